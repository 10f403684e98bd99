"""Scale benchmark: the cycle on a SYNTHETIC global 1.5-degree atmosphere, streamed.

Generates the day files (``wxmodels/data/globalgrid.py``: 121 x 240, 10 variables incl.
pressure levels, hourly; ~27 MB a day), then for a short and a long record of the same grid
(3 and 12 months by default) runs each stage in its own process: ingest, teacher (training from
scratch, streamed through loader workers), the compression cells, scoring (baselines, teacher,
candidates). A sampler records each stage's wall time and peak RSS: of its main process, and
of its whole process tree (loader workers, Dask threads' process). Targets: peak RSS of every
stage bounded and the same for both records; one epoch's training pass linear in samples (12
months / 3 months within 4 +- 0.4).

Run: ``python -m benchmarks.scale`` (``--days 365 --short-days 90``; ``--quick`` for 12 and 48
days; ``--resolution 0.25`` for the 0.25-degree grid on a bigger machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import REPO, machine, write_report

CONFIG = REPO / "configs/scale-global.yaml"
STAGES = ("ingest", "teacher", "compress", "evaluate")


# -- one stage, in its own process ---------------------------------------------------------
def _stage(name: str, config: str, overrides: list[str], out: Path) -> dict[str, Any]:
    from wxmodels.config import load_config

    cfg = load_config(config, overrides)
    state = out.parent / "state.json"
    known = json.loads(state.read_text()) if state.exists() else {}
    res: dict[str, Any] = {}
    if name == "ingest":
        from wxmodels.data.ingest import ingest

        rep = ingest(cfg.data)
        res = {"appended": rep.appended, "start": str(rep.start), "end": str(rep.end)}
    elif name == "teacher":
        from wxmodels.pipeline.teacher import train_teacher

        rec = train_teacher(cfg, reuse=False)
        known["teacher"] = rec.dir
        res = {
            "teacher": rec.id,
            "train_s": rec.fit["train_s"],
            "samples": rec.fit["samples"],
            "train_inits": rec.fit["train_inits"],
            "best_val": rec.fit["best_val"],
            "params": rec.params,
        }
    elif name == "compress":
        from wxmodels.pipeline.matrix import build_cell

        cells = {}
        for cell in cfg.compress.cells:
            t = time.perf_counter()
            rec = build_cell(cfg, cell, known["teacher"])
            cells[cell.name] = {"onnx": rec.onnx, "s": time.perf_counter() - t}
        known["cells"] = {k: v["onnx"] for k, v in cells.items()}
        res = {"cells": cells}
    elif name == "evaluate":
        from wxmodels.pipeline.evaluate import score_baselines, score_model

        t = time.perf_counter()
        base = score_baselines(cfg)
        res["baselines_s"] = time.perf_counter() - t
        res["n_inits"] = base.n_inits
        models = {"teacher": str(Path(known["teacher"]) / "model.onnx"), **known["cells"]}
        rmse = {}
        for m, path in models.items():
            sc = score_model(cfg, m, path)
            rmse[m] = sc.scores
        res["models"] = sorted(models)
        res["scored"] = len(rmse)
    state.write_text(json.dumps(known))
    return res


def _tree_rss(pid: int) -> tuple[float, float]:
    """``(main, tree)`` in MiB: the RSS of process ``pid``, and the proportional set size
    (PSS) of it with its descendants (forked loader workers share the parent's pages; their
    RSS would count them twice)."""
    import psutil

    try:
        p = psutil.Process(pid)
        main = p.memory_info().rss
        tree = p.memory_full_info().pss
        for c in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                tree += c.memory_full_info().pss
        return main / 2**20, tree / 2**20
    except psutil.Error:
        return 0.0, 0.0


def run_stage(name: str, config: Path, overrides: list[str], work: Path) -> dict[str, Any]:
    """Run stage ``name`` in a child process, sampling its RSS every 0.2 s."""
    out = work / f"{name}.json"
    cmd = [sys.executable, "-m", "benchmarks.scale", "--stage", name, "--config", str(config)]
    cmd += [f"--set={o}" for o in overrides] + ["--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    peak = {"main": 0.0, "tree": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            m, t = _tree_rss(proc.pid)
            peak["main"], peak["tree"] = max(peak["main"], m), max(peak["tree"], t)
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = proc.wait()
    stop.set()
    th.join()
    if rc != 0:
        raise SystemExit(f"stage {name} failed (exit {rc}): {' '.join(cmd)}")
    res = json.loads(out.read_text())
    return {
        **res,
        "wall_s": time.perf_counter() - t0,
        "peak_main_mib": peak["main"],
        "peak_tree_mib": peak["tree"],
    }


def run_record(
    label: str,
    start: str,
    days: int,
    landing: Path,
    work: Path,
    extra: list[str],
    stages: tuple[str, ...] = STAGES,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The four stages on the first ``days`` of the landing directory, in a fresh store.
    Stages not in ``stages`` are taken from ``previous`` (this record's results of an earlier
    run, whose teacher and cells under ``work`` are then scored again)."""
    root = work / label
    if stages == STAGES:
        shutil.rmtree(root, ignore_errors=True)
    else:
        shutil.rmtree(root / "landing", ignore_errors=True)
        shutil.rmtree(root / "store.zarr", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    end = pd.Timestamp(start) + pd.Timedelta(days=days) - pd.Timedelta(hours=1)
    # the record's day files: links to the first ``days`` of the generated ones
    (root / "landing").mkdir()
    for f in sorted(landing.glob("*.nc"))[:days]:
        (root / "landing" / f.name).symlink_to(f)
    overrides = [
        f"data.source.paths=['{root / 'landing'}/*.nc']",
        f"data.store={root / 'store.zarr'}",
        f"workdir={root / 'run'}",
        *extra,
    ]
    out: dict[str, Any] = {"days": days, "end": str(end), "date": machine()["date"]}
    for name in STAGES:
        if name not in stages:
            assert previous is not None
            out[name] = {**previous[name], "from": previous.get("date", "an earlier run")}
            continue
        print(f"[{label}] {name} ...", flush=True)
        out[name] = run_stage(name, CONFIG, overrides, root)
        print(f"[{label}] {name}: {json.dumps(out[name])[:400]}", flush=True)
    out["store_gib"] = _du(root / "store.zarr") / 2**30
    shutil.rmtree(root / "store.zarr", ignore_errors=True)
    return out


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    ap.add_argument("--config", default=str(CONFIG), help=argparse.SUPPRESS)
    ap.add_argument("--set", action="append", default=[], dest="set_")
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--short-days", type=int, default=90)
    ap.add_argument("--start", default="2021-01-01")
    ap.add_argument("--resolution", type=float, default=1.5)
    ap.add_argument("--workdir", default=str(REPO / ".wxc/scale"))
    ap.add_argument("--quick", action="store_true", help="8 and 32 days")
    ap.add_argument(
        "--stages",
        default=",".join(STAGES),
        help="stages to run again (ingest is needed for the others); the rest are taken from "
        "the last report's run, whose teacher and cells are reused",
    )
    args = ap.parse_args()
    if args.stage:
        res = _stage(args.stage, args.config, args.set_, Path(args.out))
        Path(args.out).write_text(json.dumps(res, default=str))
        return
    if args.quick:  # a split that leaves a test window in 12 days
        args.days, args.short_days = 48, 12
        args.set_ = [
            "data.split.train_fraction=0.7",
            "data.split.val_fraction=0.1",
            "data.split.gap_hours=12",
            *args.set_,
        ]
    from wxmodels.data.globalgrid import write_global_files

    work = Path(args.workdir)
    landing = work / f"landing-{args.resolution:g}"
    t = time.perf_counter()
    files = write_global_files(
        landing, start=args.start, days=args.days, resolution=args.resolution
    )
    gen_s = time.perf_counter() - t
    res: dict[str, Any] = {
        "machine": machine(),
        "resolution": args.resolution,
        "files_gib": sum(f.stat().st_size for f in files) / 2**30,
        "generate_s": gen_s,
        "overrides": args.set_,
    }
    stages = tuple(st for st in STAGES if st in args.stages.split(","))
    previous = None
    if stages != STAGES:
        if "ingest" not in stages:
            raise SystemExit("--stages: the store is rebuilt, so ingest must be among them")
        previous = json.loads((REPO / "benchmarks/reports/scale-global.json").read_text())
        if previous.get("resolution") != args.resolution or previous["long"]["days"] != args.days:
            raise SystemExit("--stages: the last report is of another grid or record")
        res["rerun"] = list(stages)
        for label in ("short", "long"):
            previous[label].setdefault("date", previous["machine"]["date"])
    for label, days in (("short", args.short_days), ("long", args.days)):
        res[label] = run_record(
            label,
            args.start,
            days,
            landing,
            work,
            args.set_,
            stages,
            None if previous is None else previous[label],
        )
        Path(work / "scale-partial.json").write_text(json.dumps(res, indent=1, default=str))
    print(write_report(*report(res, args)))


def report(res: dict[str, Any], args: argparse.Namespace) -> tuple[str, str, str, dict]:
    s, lg = res["short"], res["long"]
    rows = []
    for st in STAGES:
        rows.append(
            f"| {st} | {s[st]['wall_s']:.0f} s | {lg[st]['wall_s']:.0f} s | "
            f"{s[st]['peak_main_mib']:.0f} / {s[st]['peak_tree_mib']:.0f} MiB | "
            f"{lg[st]['peak_main_mib']:.0f} / {lg[st]['peak_tree_mib']:.0f} MiB | "
            f"{lg[st]['peak_tree_mib'] / max(s[st]['peak_tree_mib'], 1):.2f} |"
        )
    ts, tl = s["teacher"], lg["teacher"]
    ep_ratio = tl["train_s"][0] / ts["train_s"][0]
    sa_ratio = tl["samples"][0] / ts["samples"][0]
    worst = max(lg[st]["peak_tree_mib"] for st in STAGES)
    res["figures"] = {
        "epoch_ratio": ep_ratio,
        "samples_ratio": sa_ratio,
        "epoch_ratio_per_sample": ep_ratio / sa_ratio,
        "worst_peak_tree_mib": worst,
    }
    cmd = "python -m benchmarks.scale" + (
        " --quick" if args.quick else f" --days {args.days} --short-days {args.short_days}"
    )
    cmd += "".join(f' --set "{o}"' for o in res["overrides"])
    if res.get("rerun"):
        cmd += f" --stages {','.join(res['rerun'])}"
    if args.resolution != 1.5:
        cmd += f" --resolution {args.resolution:g}"
    body = "\n".join(
        [
            f"Command: `{cmd}`. Machine: {res['machine']}.",
            "",
            f"SYNTHETIC global atmosphere (not real data), {res['resolution']:g} degrees, "
            f"10 variables (7 surface, temperature at 850/500 hPa, geopotential at 500 hPa), "
            f"hourly; {res['files_gib']:.1f} GiB of day files for {lg['days']} days "
            f"(generated in {res['generate_s']:.0f} s). Store: "
            f"{s['store_gib']:.2f} GiB ({s['days']} days) and {lg['store_gib']:.2f} GiB "
            f"({lg['days']} days). Config `configs/scale-global.yaml` (streamed: chunk cache "
            "256 MiB per reading process, 2 loader workers, reads above 1 GiB refused).",
            "",
            f"| stage | wall, {s['days']} d | wall, {lg['days']} d | peak RSS main / PSS tree, "
            f"{s['days']} d | same, {lg['days']} d | tree long / short |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "| figure | value | target |",
            "|---|---|---|",
            f"| one epoch's training pass, long / short | {ep_ratio:.2f} "
            f"({tl['train_s'][0]:.0f} s / {ts['train_s'][0]:.0f} s) | 4 +- 0.4 for 12 / 3 months |",
            f"| samples in that epoch, long / short | {sa_ratio:.2f} ({tl['samples'][0]} / "
            f"{ts['samples'][0]}) | - |",
            f"| epoch time per sample, long / short | {ep_ratio / sa_ratio:.2f} | 1 (linear) |",
            f"| largest peak RSS of a stage's process tree | {worst:.0f} MiB | bounded, the "
            "same for both records |",
            "",
            *(
                [
                    f"Stages run again here: {', '.join(res['rerun'])} (on a fresh store of the "
                    f"same files); the other rows are from the run of {s['teacher']['from']} "
                    "(its teacher and cells are the ones scored).",
                    "",
                ]
                if res.get("rerun")
                else []
            ),
            "Memory is sampled every 0.2 s: the RSS of the stage's own process (main), and the "
            "PSS of it with its children (tree: the training's loader workers, forked, share "
            "pages with it; PSS counts a shared page once). Ingest runs on Dask's threaded "
            "scheduler in the stage's process. Scoring uses `evaluate.max_inits` inits (evenly "
            "spaced over the test window) and fits the regression baselines on at most "
            "`stream.max_fit_inits` training steps.",
        ]
    )
    return "scale-global", "Scale: the cycle on a global grid, streamed", body, res


if __name__ == "__main__":
    main()
