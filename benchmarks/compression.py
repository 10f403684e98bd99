"""Compression-matrix figures over seeds (issue: the compression matrix in full).

Runs the whole cycle (``wxc run``, the command operators run) once per seed on one store, each
seed with its own workdir and registry (so each trains its own teacher from scratch and builds
the full matrix), then reports per cell, over seeds: size ratio and batch-1 / batch-16 speedup
against that seed's teacher (fp32 ONNX, onnxruntime, same threads), RMSE delta per variable and
lead against that seed's teacher (mean and spread), the gates, and the ``edge`` winner against the
targets (>= 50x smaller, >= 10x faster at batch 1, RMSE within 2 % of the teacher at every lead,
no worse than the best baseline wherever the teacher beats it).

Run: ``python -m benchmarks.compression --config configs/wfde5-uk.yaml --seeds 3``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, data_dir, machine, write_report

BASELINES = ("persistence", "climatology", "linear", "cell_linear", "ridge")


def run(config: str, seeds: int, overrides: list[str], workdir: str | None = None) -> dict:
    """One ``wxc run`` per seed on a shared store (in ``workdir``, kept, when given)."""
    if data_dir() is None and "wfde5" in config:
        raise SystemExit("real data not found: set WXC_DATA_DIR to the shared data folder")
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = workdir or scratch
        for s in range(seeds):
            rep = Path(tmp) / f"seed{s}.json"
            cmd = [
                sys.executable,
                "-m",
                "flows.cli",
                "run",
                "--config",
                str(REPO / config),
                "--report",
                str(rep),
                "--set",
                f"workdir={tmp}/seed{s}",
                "--set",
                f"data.store={tmp}/store.zarr",
                "--set",
                f"promote.registry={tmp}/seed{s}/registry",
                "--set",
                f"train.seed={s}",
                *[a for o in overrides for a in ("--set", o)],
            ]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
            runs.append({**json.loads(rep.read_text()), "cycle_s": time.perf_counter() - t0})
            print(f"seed {s}: cycle {runs[-1]['cycle_s']:.0f} s", flush=True)
    return {"config": config, "overrides": overrides, "machine": machine(), "runs": runs}


def slim(res: dict) -> dict:
    """What the report needs of each cycle report (RMSE tables, sizes, latencies, gates)."""
    keep_c = (
        "name",
        "recipe",
        "params",
        "pack_bytes",
        "size_ratio",
        "latency_ms_batch1",
        "latency_ms_batch16",
        "speedup_batch1",
        "rmse",
    )
    runs = []
    for r in res["runs"]:
        runs.append(
            {
                "cycle_s": r["cycle_s"],
                "teacher": {"params": r["teacher"]["params"], "rmse": r["teacher"]["rmse"]},
                "teacher_onnx_bytes": r["teacher_onnx_bytes"],
                "teacher_latency_ms_batch1": r["teacher_latency_ms_batch1"],
                "teacher_latency_ms_batch16": r["teacher_latency_ms_batch16"],
                "baselines": {b: {"rmse": v["rmse"]} for b, v in r["baselines"].items()},
                "candidates": [
                    {
                        **{k: c[k] for k in keep_c},
                        "gate": {
                            "passed": c["gate"]["passed"],
                            "reasons": c["gate"]["reasons"][:2],
                        },
                    }
                    for c in r["candidates"]
                ],
                "promoted": [{"cell": p["cell"], "aliases": p["aliases"]} for p in r["promoted"]],
            }
        )
    return _round({**res, "runs": runs})


def _round(x, digits: int = 5):
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v, digits) for v in x]
    return x


def _arr(d: dict, variables: list[str], leads: list[str]) -> np.ndarray:
    return np.array(
        [[np.nan if d[v][lead] is None else d[v][lead] for lead in leads] for v in variables]
    )


def summarise(res: dict) -> dict:
    """Per-cell figures over seeds and the edge winner's checks."""
    runs = res["runs"]
    t0 = runs[0]["teacher"]["rmse"]
    variables = list(t0)
    leads = list(t0[variables[0]])
    teacher = np.stack([_arr(r["teacher"]["rmse"], variables, leads) for r in runs])
    best_base = np.stack(
        [
            np.nanmin(
                np.stack([_arr(r["baselines"][b]["rmse"], variables, leads) for b in BASELINES]),
                axis=0,
            )
            for r in runs
        ]
    )
    cells: dict[str, dict] = {}
    for k, r in enumerate(runs):
        t16 = r["teacher_latency_ms_batch16"]
        for c in r["candidates"]:
            e = cells.setdefault(
                c["name"], {"recipe": c["recipe"], "size": [], "b1": [], "b16": [], "rel": []}
            )
            e["size"].append(c["size_ratio"])
            e["b1"].append(c["speedup_batch1"] or np.nan)
            e["b16"].append(t16 / c["latency_ms_batch16"] if c["latency_ms_batch16"] else np.nan)
            e["rel"].append(_arr(c["rmse"], variables, leads) / teacher[k] - 1)
            e.setdefault("passed", []).append(bool(c["gate"]["passed"]))
            e.setdefault("rmse", []).append(_arr(c["rmse"], variables, leads))
            e.setdefault("params", c["params"])
    edge = [next((p["cell"] for p in r["promoted"] if "edge" in p["aliases"]), None) for r in runs]
    return {
        "variables": variables,
        "leads": leads,
        "teacher": teacher,
        "best_baseline": best_base,
        "cells": cells,
        "edge": edge,
    }


def _fmt(x: list[float]) -> str:
    a = np.asarray(x, float)
    return f"{np.nanmean(a):.1f} ± {np.nanstd(a):.1f}" if len(a) > 1 else f"{a[0]:.1f}"


def report(res: dict, cmd: str) -> str:
    s = summarise(res)
    variables, leads, runs = s["variables"], s["leads"], res["runs"]
    lines = [
        f"Command: `{cmd}`",
        f"Machine: {res['machine']}. {len(runs)} seeds (one cycle each: teacher trained from "
        "scratch, every cell built and scored on the test window).",
        f"Teacher: {runs[0]['teacher']['params']} params, "
        f"{_fmt([r['teacher_onnx_bytes'] / 1e6 for r in runs])} MB fp32 ONNX, batch-1 latency "
        f"{_fmt([r['teacher_latency_ms_batch1'] for r in runs])} ms. Cycle wall time per seed: "
        + ", ".join(f"{r['cycle_s']:.0f} s" for r in runs)
        + ".",
        "",
        "## Cells (mean ± std over seeds)",
        "",
        "Size: the teacher's fp32 ONNX over the cell's deployable artifact (the pack). Speedup: "
        "the teacher's onnxruntime latency over the cell's. Worst RMSE delta: the largest "
        "seed-mean increase over the teacher across variables and leads.",
        "",
        "| cell | recipe | params | size x | batch-1 x | batch-16 x | worst RMSE delta | "
        "passed gates |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in s["cells"].items():
        rel = np.nanmean(np.stack(c["rel"]), axis=0)
        worst = np.nanmax(rel)
        lines.append(
            f"| {name} | {c['recipe']} | {c['params']} | {_fmt(c['size'])} | {_fmt(c['b1'])} | "
            f"{_fmt(c['b16'])} | {100 * worst:+.1f} % | {sum(c['passed'])}/{len(c['passed'])} |"
        )
    lines += ["", f"`edge` winner per seed: {s['edge']}.", ""]
    checks = {}
    for name in sorted({e for e in s["edge"] if e}):
        c = s["cells"][name]
        rel = np.stack(c["rel"])
        mean_rel, sd_rel = np.nanmean(rel, axis=0), np.nanstd(rel, axis=0)
        cand = np.nanmean(np.stack(c["rmse"]), axis=0)
        t_mean = np.nanmean(s["teacher"], axis=0)
        b_mean = np.nanmean(s["best_baseline"], axis=0)
        teacher_wins = t_mean < b_mean
        checks[name] = {
            "size >= 50x": bool(np.nanmean(c["size"]) >= 50),
            "batch-1 >= 10x": bool(np.nanmean(c["b1"]) >= 10),
            "RMSE within 2 % everywhere": bool(np.all(mean_rel[np.isfinite(mean_rel)] <= 0.02)),
            "beats the best baseline where the teacher does": bool(
                np.all(cand[teacher_wins] <= b_mean[teacher_wins])
            ),
        }
        lines += [
            f"## {name}: RMSE delta vs the teacher (%, seed mean ± std)",
            "",
            f"| variable | {' | '.join(f'{lead} h' for lead in leads)} |",
            "|---|" + "---|" * len(leads),
        ]
        for i, v in enumerate(variables):
            lines.append(
                f"| {v} | "
                + " | ".join(
                    f"{100 * mean_rel[i, j]:+.1f} ± {100 * sd_rel[i, j]:.1f}"
                    + ("" if teacher_wins[i, j] or not np.isfinite(mean_rel[i, j]) else " ·")
                    for j in range(len(leads))
                )
                + " |"
            )
        lines += [
            "",
            "(· the teacher itself does not beat the best baseline there.)",
            "",
            "| target | met |",
            "|---|---|",
            *[f"| {k} | {'✓' if ok else '✗'} |" for k, ok in checks[name].items()],
            "",
        ]
    res["checks"] = checks
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/wfde5-uk.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--name", default=None, help="report name (default: compression-<config>)")
    args = ap.parse_args()
    res = slim(run(args.config, args.seeds, args.sets))
    cmd = f"python -m benchmarks.compression --config {args.config} --seeds {args.seeds}" + "".join(
        f" --set {s}" for s in args.sets
    )
    body = report(res, cmd)
    name = args.name or f"compression-{Path(args.config).stem}"
    print(write_report(name, f"Compression matrix: {Path(args.config).stem}", body, res))
    print(body)


if __name__ == "__main__":
    main()
