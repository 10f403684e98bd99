"""``python -m infra.s3 --root DIR [--host 0.0.0.0] [--port 8080]``: run the S3-compatible
server (Swift + s3api) in the foreground until stopped (the compose file's ``s3`` service,
``wxc up --s3``). The password of ``test:tester`` comes from ``$WXC_S3_SECRET``."""

from __future__ import annotations

import argparse
import signal
import time

from infra.s3.swift import SwiftS3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    server = SwiftS3(args.root, args.port, host=args.host).start()
    print(f"S3 endpoint {args.host}:{args.port} (user test:tester)", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
