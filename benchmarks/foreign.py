"""An ONNX-only teacher on a real record: its distilled student against it (issue: any teacher;
target: the student within 5 % of the teacher's RMSE at every lead).

1. A forecaster is trained once (``wxc run`` on the conv config, without climatology input so
   that its file takes only the states and the time) and its ``model.onnx`` is copied out:
   from then on it is a foreign file, the only thing of it the pipeline sees.
2. ``wxc run`` with ``configs/ncep-slp-natl-onnx.yaml`` (``teacher.onnx`` pointing at the file,
   its sha256 declared) once per seed: registered, int8 and dynamic quantization on the file
   itself, a U-Net student distilled from its onnxruntime forecasts.

Reports per seed and over seeds the student's and the quantized files' RMSE relative to the
foreign teacher at every lead, their sizes and batch-1 speedups.

Run: ``python -m benchmarks.foreign --seeds 3``
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import compression
from benchmarks.common import machine, write_report
from benchmarks.families import _fmt, _rmse


def make_foreign(work: Path, minutes: float) -> Path:
    """Train a forecaster once and hand over its ONNX file."""
    sets = [
        "net.climatology=false",
        f"train.max_minutes={minutes}",
        "compress.cells=[{name: int8, steps: [{method: int8, calibration_samples: 8}]}]",
    ]
    compression.run("configs/ncep-slp-natl.yaml", 1, sets, str(work / "origin"))
    src = next((work / "origin" / "seed0" / "teachers").glob("t-*/model.onnx"))
    dst = work / "foreign.onnx"
    shutil.copyfile(src, dst)
    shutil.rmtree(work / "origin")  # nothing of it but the file remains
    return dst


def summarise(res: dict) -> dict:
    runs = res["runs"]
    var = next(iter(runs[0]["teacher"]["rmse"]))
    leads = list(runs[0]["teacher"]["rmse"][var])
    out: dict = {"variable": var, "leads": leads, "cells": {}}
    for r in runs:
        t = np.array(_rmse(r["teacher"]["rmse"], var, leads))
        for c in r["candidates"]:
            e = out["cells"].setdefault(c["name"], {"recipe": c["recipe"], "params": c["params"]})
            e.setdefault("rel", []).append(
                (np.array(_rmse(c["rmse"], var, leads)) / t - 1).tolist()
            )
            e.setdefault("b1", []).append(c["speedup_batch1"])
            e.setdefault("size", []).append(c["size_ratio"])
    student = out["cells"].get("distill-w12")
    out["checks"] = {
        "distilled student within 5 % of the ONNX-only teacher at every lead (every seed)": bool(
            student and np.all(np.array(student["rel"]) <= 0.05)
        )
    }
    return out


def report(res: dict, s: dict, cmd: str) -> str:
    runs, leads = res["runs"], s["leads"]
    lines = [
        f"Command: `{cmd}`",
        f"Machine: {res['machine']}. The foreign file: {res['foreign']['bytes']} bytes, sha256 "
        f"`{res['foreign']['sha256'][:16]}...`, {res['foreign']['origin_s']:.0f} s to make "
        f"(a U-Net trained once, handed over as nothing but its ONNX file). {len(runs)} seeds; "
        "cycle wall time per seed: " + ", ".join(f"{r['cycle_s']:.0f} s" for r in runs) + ".",
        "",
        f"The teacher's RMSE of {s['variable']} (Pa): "
        + ", ".join(
            f"{lead} h {np.mean([r['teacher']['rmse'][s['variable']][lead] for r in runs]):.1f}"
            for lead in leads
        )
        + "; persistence: "
        + ", ".join(
            f"{lead} h {runs[0]['baselines']['persistence']['rmse'][s['variable']][lead]:.1f}"
            for lead in leads
        )
        + ".",
        "",
        "| cell | recipe | params | size x | batch-1 x | "
        + " | ".join(f"ΔRMSE {lead} h" for lead in leads)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(leads),
    ]
    for name, c in s["cells"].items():
        rel = np.array(c["rel"], float)
        lines.append(
            f"| {name} | {c['recipe']} | {c['params']} | {_fmt(c['size'])} | {_fmt(c['b1'])} | "
            + " | ".join(
                f"{100 * rel[:, j].mean():+.1f} ± {100 * rel[:, j].std():.1f} % "
                f"(max {100 * rel[:, j].max():+.1f})"
                for j in range(len(leads))
            )
            + " |"
        )
    lines += ["", "| target | met |", "|---|---|"]
    lines += [f"| {k} | {'✓' if ok else '✗'} |" for k, ok in s["checks"].items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--origin-minutes", type=float, default=6.0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--name", default="foreign-ncep-slp-natl")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.workdir or scratch)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        path = make_foreign(work, args.origin_minutes)
        origin_s = time.perf_counter() - t0
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        size = path.stat().st_size
        sets = [f"teacher.onnx={path}", f"teacher.sha256={sha}"]
        res = compression.slim(
            compression.run("configs/ncep-slp-natl-onnx.yaml", args.seeds, sets, str(work))
        )
    res["foreign"] = {"sha256": sha, "bytes": size, "origin_s": origin_s}
    res["machine"] = machine()
    s = summarise(res)
    cmd = f"python -m benchmarks.foreign --seeds {args.seeds}"
    body = report(res, s, cmd)
    print(
        write_report(
            args.name,
            "An ONNX-only teacher and its students: ncep-slp-natl",
            body,
            {**res, "summary": s},
        )
    )
    print(body)


if __name__ == "__main__":
    main()
