"""Registry transfer speed (issue: a model registry deployers can rely on).

On a real S3-compatible server started here (OpenStack Swift + s3api; moto's server when Swift
is not installed, named in the report), in one run: a 100 MB incompressible artifact uploaded
and downloaded with plain s3fs (``put_file`` / ``get_file``) and through the registry
(``publish``: hashing + upload + manifest; ``pull``: download + verification + cache). Reports
both throughputs and their ratio (target: the registry reaches >= 50 % of plain s3fs), and
what a pull of a version already in the cache downloads (target: nothing), counted as reads
of the version's files.

Run: ``python -m benchmarks.registry``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, median, write_report


def _server(tmp: Path):
    from infra.s3 import SwiftS3, swift_available

    if swift_available():
        swift = SwiftS3(tmp / "swift").start()
        return "OpenStack Swift + s3api", swift.storage_options(), swift.stop
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    so = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": f"http://{host}:{port}"}}
    return "moto server (Swift not installed)", so, server.stop


def run(mb: int, repeats: int) -> dict:
    import s3fs

    from wxmodels.registry import Cache, Registry

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        kind, so, stop = _server(tmp)
        try:
            fs = s3fs.S3FileSystem(**so)
            fs.mkdir("bench")
            src = tmp / "model.onnx"
            res: dict = {"server": kind, "mb": mb, "repeats": repeats, "machine": machine()}
            put_plain, get_plain, put_reg, get_reg = [], [], [], []
            for k in range(repeats):
                src.write_bytes(os.urandom(mb << 20))  # new content: a new version each time
                t = time.perf_counter()
                fs.put_file(str(src), f"bench/plain/{k}")
                put_plain.append(time.perf_counter() - t)
                t = time.perf_counter()
                fs.get_file(f"bench/plain/{k}", str(tmp / "plain.out"))
                get_plain.append(time.perf_counter() - t)
                reg = Registry("s3://bench/registry", so)
                t = time.perf_counter()
                v = reg.publish("bench", {"model.onnx": src}, {"kind": "benchmark"})
                put_reg.append(time.perf_counter() - t)
                t = time.perf_counter()
                reg.pull(f"bench@{v}", tmp / f"out{k}", cache=Cache(tmp / f"cache{k}"))
                get_reg.append(time.perf_counter() - t)
                print(
                    f"{k}: plain put {put_plain[-1]:.2f} s get {get_plain[-1]:.2f} s; "
                    f"registry publish {put_reg[-1]:.2f} s pull {get_reg[-1]:.2f} s",
                    flush=True,
                )
            # a cached pull: count reads of the version's files
            reads = []
            real_open = reg.fs.open

            def counting(path, *a, **kw):
                if str(path).endswith("/model.onnx"):
                    reads.append(path)
                return real_open(path, *a, **kw)

            reg.fs.open = counting
            t = time.perf_counter()
            reg.pull(f"bench@{v}", cache=Cache(tmp / f"cache{repeats - 1}"))
            res["cached_pull_s"] = time.perf_counter() - t
            res["cached_pull_file_reads"] = len(reads)
        finally:
            stop()
    for name, xs in (
        ("put_plain", put_plain),
        ("get_plain", get_plain),
        ("put_registry", put_reg),
        ("get_registry", get_reg),
    ):
        res[f"{name}_s"] = xs
        res[f"{name}_mbps"] = mb / median(xs)
    res["upload_ratio"] = res["put_registry_mbps"] / res["put_plain_mbps"]
    res["download_ratio"] = res["get_registry_mbps"] / res["get_plain_mbps"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    r = run(args.mb, args.repeats)
    body = "\n".join(
        [
            f"Command: `python -m benchmarks.registry --mb {args.mb} --repeats {args.repeats}`",
            f"Machine: {r['machine']}. Server: {r['server']} on loopback. "
            f"Medians of {args.repeats} transfers of {args.mb} MB (random bytes).",
            "",
            "| figure | plain s3fs | registry | registry / plain | target |",
            "|---|---|---|---|---|",
            f"| upload (MB/s) | {r['put_plain_mbps']:.0f} | {r['put_registry_mbps']:.0f} | "
            f"{r['upload_ratio']:.2f} | >= 0.5 |",
            f"| download (MB/s) | {r['get_plain_mbps']:.0f} | {r['get_registry_mbps']:.0f} | "
            f"{r['download_ratio']:.2f} | >= 0.5 |",
            "",
            f"Pull of a version already in the cache: {r['cached_pull_file_reads']} reads of its "
            f"files (target 0), {r['cached_pull_s']:.2f} s (the manifest is read and every "
            "cached file re-hashed).",
            "",
            "The registry's upload includes hashing the file (sha256) and writing the manifest; "
            "its download includes hashing while reading and landing the file in the cache.",
        ]
    )
    print(write_report("registry", "Registry transfers", body, r))
    print(body)


if __name__ == "__main__":
    main()
