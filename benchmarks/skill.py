"""Forecast-skill benchmark: is the teacher worth compressing?

Trains the teacher of a config with several seeds on the real data and scores it on the test
window beside every baseline the evaluation fits (persistence, climatology, pooled linear,
per-cell linear, spatial ridge; regressions fitted on the training years). Per variable and
lead: RMSE and ACC (teacher as mean and spread over seeds), and the verdict against the best
baseline with its interval: a paired block bootstrap over init times
(:mod:`wxmodels.skill.significance`) of the seed-mean per-init MSE against the baseline's.

Run: ``python -m benchmarks.skill --config configs/ncep-slp-natl.yaml --seeds 3``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from benchmarks.common import REPO, data_dir, machine, write_report
from wxmodels.config import load_config
from wxmodels.data.ingest import ingest
from wxmodels.pipeline import evaluate as ev
from wxmodels.pipeline.teacher import train_teacher
from wxmodels.skill.significance import compare

BASELINES = ("persistence", "climatology", "linear", "cell_linear", "ridge")
CONFIDENCE = 0.95


def run(config: str, seeds: int, overrides: list[str]) -> dict:
    d = data_dir()
    if d is None:
        raise SystemExit("real data not found: set WXC_DATA_DIR to the shared data folder")
    with tempfile.TemporaryDirectory() as tmp:
        base = [f"workdir={tmp}/w", f"data.store={tmp}/s.zarr", "train.init=scratch"]
        cfg = load_config(REPO / config, [*base, *overrides])
        ingest(cfg.data)
        t0 = time.perf_counter()
        bs = ev.score_baselines(cfg)
        base_s = time.perf_counter() - t0
        assert bs.errors is not None
        with xr.open_dataset(bs.errors, engine="scipy") as ds:
            base_err = ds.load()
        teachers, errs = [], []
        for s in range(seeds):
            c = load_config(REPO / config, [*base, *overrides, f"train.seed={s}"])
            t0 = time.perf_counter()
            rec = train_teacher(c)
            train_s = time.perf_counter() - t0
            ms = ev.score_model(c, "teacher", f"{rec.dir}/model.onnx")
            assert ms.errors is not None
            with xr.open_dataset(ms.errors, engine="scipy") as ds:
                errs.append(ds.load())
            teachers.append(
                {
                    "scores": ms.scores["teacher"],
                    "train_s": train_s,
                    "params": rec.params,
                    "epochs": rec.fit["epochs"],
                    "best_epoch": rec.fit.get("best_epoch"),
                    "best_val": rec.fit["best_val"],
                    "stopped": rec.fit.get("stopped"),
                    "linear_init": rec.linear_init,
                }
            )
            print(f"seed {s}: {train_s:.0f} s, val {rec.fit['best_val']:.4f}", flush=True)
    verdicts = _verdicts(errs, base_err)
    return {
        "config": config,
        "overrides": overrides,
        "machine": machine(),
        "teachers": teachers,
        "baselines": {k: v for k, v in bs.scores.items()},
        "baselines_s": base_s,
        "verdicts": verdicts,
        "test_window": bs.test_window,
        "n_inits": bs.n_inits,
    }


def _verdicts(errs: list[xr.Dataset], base_err: xr.Dataset) -> dict:
    """Per variable and lead: the seed-mean teacher against each baseline, with intervals."""
    out: dict = {}
    for v in base_err.data_vars:
        out[v] = {}
        t = np.mean([e[v].sel(model="teacher").values for e in errs], axis=0)  # (N, L)
        for j, lead in enumerate(base_err["lead_time"].values):
            row = {}
            for b in base_err["model"].values:
                c = compare(
                    t[:, j],
                    base_err[v].sel(model=b).values[:, j],
                    confidence=CONFIDENCE,
                    min_block=1,
                )
                row[str(b)] = {"estimate": c.estimate, "lower": c.lower, "upper": c.upper}
                row[str(b)]["block"] = c.block
            out[v][f"{float(lead):g}"] = row
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def table(res: dict, metric: str) -> str:
    t, b = res["teachers"], res["baselines"]
    variables = list(t[0]["scores"][metric])
    leads = list(t[0]["scores"][metric][variables[0]])
    rows = [
        f"| variable | model | {' | '.join(lead + ' h' for lead in leads)} |",
        "|---|---|" + "---|" * len(leads),
    ]
    for v in variables:
        vals = np.array(
            [
                [
                    np.nan if s["scores"][metric][v][x] is None else s["scores"][metric][v][x]
                    for x in leads
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
        for name in BASELINES:
            if name in b:
                rows.append(
                    f"| | {name} | " + " | ".join(_fmt(b[name][metric][v][x]) for x in leads) + " |"
                )
    return "\n".join(rows)


def verdict_table(res: dict) -> tuple[str, dict]:
    """Teacher (seed mean) against the best baseline at each lead, with the interval."""
    b, ver = res["baselines"], res["verdicts"]
    rows = [
        "| variable | lead | best baseline | its RMSE | teacher RMSE | teacher vs it "
        f"({CONFIDENCE:.0%} bounds) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    summary: dict = {}
    for v in ver:
        summary[v] = {}
        for lead, row in ver[v].items():
            best = min(
                (n for n in BASELINES if n in b and b[n]["rmse"][v][lead] is not None),
                key=lambda n: b[n]["rmse"][v][lead],
            )
            tm = np.mean([s["scores"]["rmse"][v][lead] for s in res["teachers"]])
            c = row[best]
            beats_all = all(row[n]["upper"] < 0 for n in row)
            verdict = (
                "better than all, significantly"
                if beats_all
                else "worse, significantly"
                if c["lower"] > 0
                else "tie (within noise)"
                if c["upper"] >= 0
                else "better than the best, not all"
            )
            summary[v][lead] = {"best": best, "relative": c["estimate"], "verdict": verdict}
            rows.append(
                f"| {v} | {lead} h | {best} | {b[best]['rmse'][v][lead]:.4g} | {tm:.4g} | "
                f"{c['estimate']:+.1%} [{c['lower']:+.1%}, {c['upper']:+.1%}] | {verdict} |"
            )
    return "\n".join(rows), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/wfde5-uk.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--name", default=None, help="report name (default: skill-<config name>)")
    args = ap.parse_args()
    res = run(args.config, args.seeds, args.sets)
    name = args.name or f"skill-{Path(args.config).stem}"
    ver, summary = verdict_table(res)
    res["summary"] = summary
    t0 = res["teachers"][0]
    body = "\n".join(
        [
            f"Command: `python -m benchmarks.skill --config {args.config} --seeds {args.seeds}"
            + "".join(f" --set {s}" for s in args.sets)
            + "`",
            f"Machine: {res['machine']}. Test window {res['test_window']} ({res['n_inits']} "
            "inits).",
            f"Teacher: {t0['params']} parameters; training "
            f"{np.mean([t['train_s'] for t in res['teachers']]):.0f} s per seed (CPU); "
            f"best epochs {[t['best_epoch'] for t in res['teachers']]} (-1: the least-squares "
            f"start was never beaten on validation). Baselines fitted in {res['baselines_s']:.0f} s.",
            "",
            "## Verdict: teacher (seed mean) against the best baseline",
            "",
            "Relative RMSE difference with its bounds at "
            f"{CONFIDENCE:.0%} (paired circular block bootstrap over init times, blocks from the "
            "autocorrelation of the error differences). 'better than all' needs the upper bound "
            "below 0 against every baseline.",
            "",
            ver,
            "",
            "## RMSE (teacher: mean ± std over seeds)",
            "",
            table(res, "rmse"),
            "",
            "## ACC",
            "",
            table(res, "acc"),
        ]
    )
    print(write_report(name, f"Skill: {Path(args.config).stem}", body, res))
    print(body)


if __name__ == "__main__":
    main()
