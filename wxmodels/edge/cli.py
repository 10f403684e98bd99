"""``wxc-edge``: pull a model and forecast with it, on a device that has only NumPy and
onnxruntime.

    wxc-edge pull REGISTRY NAME@ALIAS DIR [--trust-key KEY.pub] [--all | --ort]
    wxc-edge predict DIR --input analyses.npz --leads 1,6,24 --out forecast.npz [--start T]
    wxc-edge info DIR

Errors end in one line on stderr, ``error: ...``, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from wxmodels.edge.model import EdgeModel
from wxmodels.edge.pull import ORT_FILES, RUNTIME_FILES, pull
from wxmodels.errors import WxcError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wxc-edge", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pl = sub.add_parser("pull", help="pull a version, verified, into a directory")
    pl.add_argument("registry", help="registry directory, file:// or http(s):// URL")
    pl.add_argument("ref", help="NAME@ALIAS or NAME@VERSION")
    pl.add_argument("dest", type=Path, help="directory (new, empty, or an earlier pull)")
    pl.add_argument("--trust-key", action="append", default=[], help="trusted public key")
    pl.add_argument("--all", action="store_true", help="every file, not only what runs")
    pl.add_argument(
        "--ort", action="store_true", help="model.ort instead of model.onnx (minimal builds)"
    )
    pr = sub.add_parser("predict", help="forecast from analyses with a pulled model")
    pr.add_argument("model", type=Path, help="the pulled directory")
    pr.add_argument("--input", required=True, type=Path, help=".npz (or .nc/.zarr with xarray)")
    pr.add_argument("--leads", default="1,6,24", help="lead times in hours, comma separated")
    pr.add_argument("--out", required=True, type=Path, help="forecast file: .npz or .nc")
    pr.add_argument("--start", help="initialisation time (default: the input's last time)")
    pr.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    inf = sub.add_parser("info", help="what a pulled model is and what it takes")
    inf.add_argument("model", type=Path)
    return p


def _leads(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise WxcError(f"--leads {text!r}: hours, comma separated") from None


def run(args: argparse.Namespace) -> str:
    if args.command == "pull":
        dest = pull(
            args.registry,
            args.ref,
            args.dest,
            files=None if args.all else ORT_FILES if args.ort else RUNTIME_FILES,
            trusted_keys=args.trust_key,
        )
        got = json.loads((dest / ".wxc-edge.json").read_text())
        return f"{got['model']}@{got['version']}: {len(got['files'])} files verified -> {dest}"
    model = EdgeModel(args.model, threads=getattr(args, "threads", 1))
    if args.command == "info":
        io = model.io
        return json.dumps(
            {
                "model": model.ref,
                "file": model.path.name,
                "variables": list(io.variables),
                "units": list(io.units),
                "step_hours": io.step_hours,
                "history": io.history,
                "grid": list(io.shape),
                "recipe": model.manifest.get("recipe_label"),
            },
            indent=1,
        )
    from wxmodels.edge.fields import read_analyses, write_forecast

    leads = _leads(args.leads)
    inputs = read_analyses(args.input, model, args.start)
    t = time.perf_counter()
    data = model.forecast(inputs.state, inputs.init_hours, leads)[0]
    took = time.perf_counter() - t
    out = write_forecast(args.out, model, inputs, leads, data)
    return (
        f"{model.ref}: forecast from {inputs.init} at {sorted(set(leads))} h in "
        f"{took * 1e3:.1f} ms -> {out}"
    )


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        sys.stdout.write(run(args) + "\n")
    except (WxcError, OSError, ValueError) as e:
        sys.stderr.write(f"error: {e}\n")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
