"""The operational loop replayed over a real ten-year record (``wxc replay``), and its timeline
report: cost per tick against archive length, live (out-of-sample) skill of the deployed
models against the baselines, promotions and refusals.

    python -m benchmarks.replay --config configs/ncep-slp-natl.yaml --start 2003-01-01 \\
        --end 2011-01-01 --name replay-ncep-slp-natl [--set train.max_minutes=2.5 ...]

The replay is resumable: run the same command again after an interruption. ``--report-only``
rewrites the report from an existing timeline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, REPORTS, data_dir, machine, write_report


def _plots(tl, name: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from wxmodels.replay.report import timeline_rows

    rows = pd.DataFrame(timeline_rows(tl))
    rows["t"] = pd.to_datetime([t.time for t in tl.ticks])
    out = []
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for col, label in (
        ("teacher_rel", "live teacher"),
        ("edge_rel", "live edge"),
        ("best_baseline_rel", "best baseline as of the tick"),
    ):
        s = rows[["t", col]].dropna()
        ax.plot(s["t"], s[col], marker=".", lw=1, label=label)
    for t in tl.ticks:
        if t.retrain is not None:
            ax.axvline(pd.Timestamp(t.time), color="0.8", lw=0.8, zorder=0)
    ax.set_ylabel("RMSE / climatology RMSE")
    ax.set_title(f"{tl.name}: out-of-sample skill of what deployers had, per period")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = REPORTS / f"{name}-skill.png"
    fig.savefig(p, dpi=90)
    out.append(p.name)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ing = rows.iloc[1:]
    a1.plot(ing["store_steps"], ing["ingest_s"], ".", ms=4)
    a1.set_xlabel("store length (steps)")
    a1.set_ylabel("ingest per tick (s)")
    rt = [t.retrain for t in tl.ticks if t.retrain is not None and t.retrain.train_inits]
    a2.plot([r.train_inits for r in rt], [r.train_wall_s for r in rt], "o", label="retrain")
    a2.plot([r.train_inits for r in rt], [r.cvp_wall_s for r in rt], "s", label="compress-validate")
    a2.set_xlabel("training samples")
    a2.set_ylabel("wall (s)")
    a2.legend(fontsize=8)
    fig.suptitle(f"{tl.name}: cost against archive length")
    fig.tight_layout()
    p = REPORTS / f"{name}-cost.png"
    fig.savefig(p, dpi=90)
    out.append(p.name)
    plt.close("all")
    return out


def _epoch_costs(tl, workdir: Path) -> list[dict]:
    """Per retrain: training samples, epochs run and seconds per epoch (from its record: the
    retrain's wall time is capped by ``train.max_minutes``, the cost per epoch is not)."""
    from wxmodels.pipeline.records import TeacherRecord

    out = []
    for t in tl.ticks:
        r = t.retrain
        p = workdir / "work" / "teachers" / (r.teacher_id if r else "-") / "teacher.json"
        if r is None or not p.exists():
            continue
        fit = TeacherRecord.load(p).fit
        n = int(fit.get("epochs") or 0)
        out.append(
            {
                "tick": t.time[:10],
                "train_inits": r.train_inits,
                "epochs": n,
                "fit_s": round(float(fit["wall_s"]), 1),
                "s_per_epoch": round(float(fit["wall_s"]) / n, 2) if n else None,
                "stopped": fit.get("stopped", ""),
            }
        )
    return out


def _epoch_lines(rows: list[dict]) -> list[str]:
    import numpy as np

    from wxmodels.replay.report import md_table

    if not rows:
        return []
    pts = [
        (r["train_inits"], r["s_per_epoch"]) for r in rows if r["s_per_epoch"] and r["train_inits"]
    ]
    lines = ["## Retrain cost against training samples", "", md_table(rows), ""]
    if len(pts) >= 3 and np.ptp([p[0] for p in pts]):
        slope = float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])
        lines += [
            f"Seconds per epoch against training samples, log-log slope: {slope:.2f} "
            "(1 = proportional). The retrain's wall time is capped by `train.max_minutes`; a "
            "`train.window` caps the samples instead.",
            "",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--ingest-every", default="1M")
    ap.add_argument("--retrain-every", default="1Y")
    ap.add_argument("--name", required=True, help="report name under benchmarks/reports/")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--revisions", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    if data_dir() is None:
        print("skipped: the real records are not in ../shared/data (set WXC_DATA_DIR)")
        return 0
    workdir = Path(a.workdir or REPO / ".wxc" / "bench" / a.name)
    cmd = [
        sys.executable,
        "-m",
        "flows.cli",
        "replay",
        "--config",
        a.config,
        "--start",
        a.start,
        "--end",
        a.end,
        "--ingest-every",
        a.ingest_every,
        "--retrain-every",
        a.retrain_every,
        "--workdir",
        str(workdir),
        *[x for s in a.sets for x in ("--set", s)],
        *(["--revisions"] if a.revisions else []),
    ]
    wall = None
    if not a.report_only:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO)
        wall = time.perf_counter() - t0
    from wxmodels.replay.records import Timeline
    from wxmodels.replay.report import markdown, summary

    tl = Timeline.load(workdir / "timeline.json")
    plots = _plots(tl, a.name)
    shown = " ".join(
        ["python -m benchmarks.replay", *(x for x in sys.argv[1:] if x != "--report-only")]
    )
    prior = REPORTS / f"{a.name}.json"
    if a.report_only and prior.exists():  # the run's own wall time and command
        old = json.loads(prior.read_text())
        wall, shown = old.get("wall_s"), old.get("command", shown)
    head = [
        f"Command: `{shown}`",
        "",
        f"Machine: {machine()}. "
        + (f"Wall time of this run: {wall / 60:.1f} min." if wall else "")
        + " Wall times per tick are in the timeline; absolute times on a shared 2-core "
        "machine are noisy, ratios within the run are what compare.",
        "",
        *[f"![{p}]({p})" for p in plots],
        "",
    ]
    epochs = _epoch_costs(tl, workdir)
    head += _epoch_lines(epochs)
    body = "\n".join(head) + markdown(tl).split("\n", 1)[1]
    write_report(
        a.name,
        markdown(tl).split("\n", 1)[0].lstrip("# "),
        body,
        {
            "summary": summary(tl),
            "epochs": epochs,
            "wall_s": wall,
            "command": shown,
            "machine": machine(),
        },
    )
    print(f"report: {REPORTS / (a.name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
