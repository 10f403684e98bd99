"""``python -m deployments [--config configs/deployments.yaml] [--set key=value ...]``: register
the deployments and run their flow runs here until stopped (what ``wxc up`` starts)."""

from __future__ import annotations

import argparse

from prefect import serve

from deployments import build
from wxmodels.config.deployments import load_deployments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/deployments.yaml")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    serve(*build(load_deployments(args.config, args.sets)), print_starting_message=True)


if __name__ == "__main__":
    main()
