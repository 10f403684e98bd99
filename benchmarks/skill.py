"""Forecast-skill benchmark (issue: forecast skill you can trust).

Trains the teacher of a config with several seeds on the real data and scores it on the test
window beside persistence, the climatology and the linear-regression baseline: RMSE and ACC per
variable and lead, teacher as mean and spread over seeds.

Run: ``python -m benchmarks.skill --config configs/wfde5-uk.yaml --seeds 3``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, data_dir, machine, write_report
from wxmodels.config import load_config
from wxmodels.data.ingest import ingest
from wxmodels.pipeline import evaluate as ev
from wxmodels.pipeline.teacher import train_teacher

TARGET_VARS = {
    "wfde5-uk": [
        "2m_temperature",
        "2m_specific_humidity",
        "10m_wind_speed",
        "surface_thermal_radiation_downwards",
    ]
}


def run(config: str, seeds: int, overrides: list[str]) -> dict:
    d = data_dir()
    if d is None:
        raise SystemExit("real data not found: set WXC_DATA_DIR to the shared data folder")
    with tempfile.TemporaryDirectory() as tmp:
        base = [f"workdir={tmp}/w", f"data.store={tmp}/s.zarr"]
        cfg = load_config(REPO / config, [*base, *overrides])
        ingest(cfg.data)
        teachers = []
        for s in range(seeds):
            c = load_config(REPO / config, [*base, *overrides, f"train.seed={s}"])
            t0 = time.perf_counter()
            rec = train_teacher(c)
            sc = ev.score_model(c, "teacher", rec.onnx).scores["teacher"]
            teachers.append(
                {
                    "scores": sc,
                    "train_s": time.perf_counter() - t0,
                    "params": rec.params,
                    "epochs": rec.fit["epochs"],
                    "best_val": rec.fit["best_val"],
                    "fit": rec.fit,
                    "linear_init": rec.get("linear_init"),
                }
            )
            print(f"seed {s}: {teachers[-1]['train_s']:.0f} s, val {rec['fit']['best_val']:.4f}")
        base_sc = ev.score_baselines(cfg)
    return {
        "config": config,
        "overrides": overrides,
        "machine": machine(),
        "teachers": teachers,
        "baselines": base_sc["scores"],
        "test_window": base_sc["test_window"],
        "n_inits": base_sc["n_inits"],
    }


def table(res: dict, metric: str) -> tuple[str, dict]:
    """Markdown table and the target check (teacher seed mean better than every baseline)."""
    t = res["teachers"]
    b = res["baselines"]
    variables = list(t[0]["scores"][metric])
    leads = list(t[0]["scores"][metric][variables[0]])
    better = (lambda x, y: x < y) if metric == "rmse" else (lambda x, y: x > y)
    rows = [
        f"| variable | model | {' | '.join(lead + ' h' for lead in leads)} |",
        "|---|---|" + "---|" * len(leads),
    ]
    wins = {}
    for v in variables:
        vals = np.array(
            [
                [
                    s["scores"][metric][v][lead]
                    if s["scores"][metric][v][lead] is not None
                    else np.nan
                    for lead in leads
                ]
                for s in t
            ]
        )
        mean, sd = np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)
        rows.append(
            f"| {v} | teacher ({len(t)} seeds) | "
            + " | ".join(f"{m:.4g} ± {e:.2g}" for m, e in zip(mean, sd, strict=True))
            + " |"
        )
        for name in ("persistence", "climatology", "linear"):
            if name in b and b[name][metric][v][leads[0]] is not None:
                rows.append(
                    f"| | {name} | "
                    + " | ".join(
                        f"{b[name][metric][v][lead]:.4g}"
                        if b[name][metric][v][lead] is not None
                        else "-"
                        for lead in leads
                    )
                    + " |"
                )
        wins[v] = {
            lead: all(
                better(mean[j], b[n][metric][v][lead])
                for n in ("persistence", "climatology", "linear")
                if n in b and b[n][metric][v][lead] is not None
            )
            for j, lead in enumerate(leads)
        }
    return "\n".join(rows), wins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/wfde5-uk.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--name", default=None, help="report name (default: skill-<config name>)")
    args = ap.parse_args()
    res = run(args.config, args.seeds, args.sets)
    name = args.name or f"skill-{Path(args.config).stem}"
    rmse_t, wins = table(res, "rmse")
    acc_t, _ = table(res, "acc")
    targets = TARGET_VARS.get(Path(args.config).stem, list(wins))
    lines = [
        f"| {v} | " + " ".join("✓" if wins[v][lead] else "✗" for lead in wins[v]) + " |"
        for v in targets
        if v in wins
    ]
    body = "\n".join(
        [
            f"Command: `python -m benchmarks.skill --config {args.config} --seeds {args.seeds}"
            + "".join(f" --set {s}" for s in args.sets)
            + "`",
            f"Machine: {res['machine']}. Test window {res['test_window']} ({res['n_inits']} inits).",
            f"Teacher: {res['teachers'][0]['params']} parameters; training "
            f"{np.mean([t['train_s'] for t in res['teachers']]):.0f} s per seed (CPU).",
            "",
            "## RMSE (teacher: mean ± std over seeds)",
            "",
            rmse_t,
            "",
            "## ACC",
            "",
            acc_t,
            "",
            "## Teacher (seed mean) beats all three baselines on RMSE",
            "",
            "| variable | leads |",
            "|---|---|",
            *lines,
        ]
    )
    print(write_report(name, f"Skill: {Path(args.config).stem}", body, res))
    print(body)


if __name__ == "__main__":
    main()
