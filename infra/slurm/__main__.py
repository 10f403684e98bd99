"""``python -m infra.slurm up|down|status [--root DIR] [--partition NAME]``: a single-node SLURM
on loopback (as root), its daemons left running between ``up`` and ``down``. SLURM's commands
and ``runtime.cluster: slurm`` find it through ``SLURM_CONF``, which ``up`` prints."""

from __future__ import annotations

import argparse
import json
import sys

from infra.slurm.cluster import LoopbackSlurm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.slurm", description=__doc__)
    ap.add_argument("action", choices=["up", "down", "status"])
    ap.add_argument("--root", default=".wxc/slurm", help="state, logs and slurm.conf")
    ap.add_argument("--partition", default="debug")
    args = ap.parse_args(argv)
    slurm = LoopbackSlurm(args.root, partition=args.partition)
    if args.action == "up":
        try:
            slurm.start()
        except RuntimeError as e:
            sys.stderr.write(f"error: {e}\n")
            return 1
        sys.stdout.write(f"SLURM up (partition {args.partition}); export SLURM_CONF={slurm.conf}\n")
    elif args.action == "down":
        slurm.stop()
        sys.stdout.write("SLURM down\n")
    else:
        sys.stdout.write(json.dumps(slurm.status(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
