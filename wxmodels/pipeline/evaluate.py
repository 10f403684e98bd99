"""Validate: forecasts of every model on the test window, baselines, latency, scorecard, gates."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from wxmodels.config.cycle import CycleConfig
from wxmodels.export.onnx import OrtForecaster, measure_latency
from wxmodels.pipeline.context import RunData, load_climatology, load_run_data, set_threads
from wxmodels.skill import scorecard as scj
from wxmodels.skill.gates import check_gates
from wxmodels.skill.verify import (
    as_dataset,
    climatology_forecast,
    persistence_forecast,
    run_forecasts,
    scorecard,
    truth_at_leads,
)
from wxmodels.utils import stable_hash, write_json_atomic

__all__ = [
    "assemble",
    "eval_inits",
    "measure_latencies",
    "score_baselines",
    "score_model",
]

log = logging.getLogger(__name__)


def max_history(cfg: CycleConfig) -> int:
    """The longest input history of any model in the cycle (so all share the same inits)."""
    h = [cfg.net.history]
    for c in cfg.compress.cells:
        h += [s.history for s in c.steps if getattr(s, "history", None)]
    return max(h)


def lead_steps(cfg: CycleConfig, step_hours: float) -> list[int]:
    steps = [lead / step_hours for lead in cfg.evaluate.leads_h]
    bad = [lead for lead, s in zip(cfg.evaluate.leads_h, steps, strict=True) if s != int(s)]
    if bad:
        raise ValueError(f"lead times {bad} h are not multiples of the data's {step_hours} h step")
    return [int(s) for s in steps]


def eval_inits(cfg: CycleConfig, run: RunData) -> np.ndarray:
    """Init indices in the test window, every ``init_stride_h``, with complete windows."""
    f = run.fields
    stride = max(1, round(cfg.evaluate.init_stride_h / f.step_hours))
    inits = run.split.inits(
        f,
        "test",
        history=max_history(cfg),
        lead_steps=max(lead_steps(cfg, f.step_hours)),
        stride=stride,
    )
    if len(inits) == 0:
        raise ValueError("the test window has no complete init time for the longest lead")
    return inits


def _truth_and_clim(cfg, run, inits, teacher_dir):
    f = run.fields
    ls = lead_steps(cfg, f.step_hours)
    truth = as_dataset(truth_at_leads(f, inits, ls), f, inits, ls)
    clim = load_climatology(teacher_dir)
    clim_ds = as_dataset(climatology_forecast(clim, f, inits, ls), f, inits, ls)
    return ls, truth, clim_ds


def score_model(cfg: CycleConfig, name: str, onnx_path: str, teacher_dir: str) -> dict[str, Any]:
    """Score one ONNX model (run in onnxruntime) on the test window. Returns JSON scores."""
    t0 = time.perf_counter()
    set_threads(cfg.runtime.torch_threads)
    run = load_run_data(cfg)
    inits = eval_inits(cfg, run)
    ls, truth, clim = _truth_and_clim(cfg, run, inits, teacher_dir)
    model = OrtForecaster(onnx_path, threads=cfg.runtime.torch_threads)
    arr = run_forecasts(model, run.fields, inits, ls, history=model.history)
    sc = scorecard({name: as_dataset(arr, run.fields, inits, ls)}, truth, clim)
    return {
        "name": name,
        "scores": scj.to_json(sc),
        "n_inits": len(inits),
        "wall_s": time.perf_counter() - t0,
    }


def score_baselines(cfg: CycleConfig, teacher_dir: str) -> dict[str, Any]:
    """Persistence and climatology on the same inits and leads."""
    run = load_run_data(cfg)
    inits = eval_inits(cfg, run)
    ls, truth, clim = _truth_and_clim(cfg, run, inits, teacher_dir)
    f = run.fields
    fc = {
        "persistence": as_dataset(persistence_forecast(f, inits, ls), f, inits, ls),
        "climatology": clim,
    }
    sc = scorecard(fc, truth, clim)
    return {
        "scores": scj.to_json(sc),
        "n_inits": len(inits),
        "test_window": [str(f.times[inits[0]]), str(f.times[inits[-1]])],
    }


def measure_latencies(cfg: CycleConfig, models: dict[str, str]) -> dict[str, dict[str, float]]:
    """onnxruntime latency (ms, median) at batch 1 and 16 for each model, one after another."""
    run = load_run_data(cfg)
    f = run.fields
    out = {}
    for name, path in models.items():
        sess = OrtForecaster(path, threads=cfg.evaluate.latency_threads)
        h = sess.history
        idx = run.split.inits(f, "val", history=h, lead_steps=1)[:16]
        state = np.stack([f.data[i - h + 1 : i + 1] for i in idx]).astype(np.float32)
        tm = f.hours[idx].astype(np.float32)
        out[name] = {
            f"batch{b}_ms": measure_latency(
                path,
                state,
                tm,
                batch=b,
                threads=cfg.evaluate.latency_threads,
                repeats=cfg.evaluate.latency_repeats,
            )
            for b in (1, 16)
        }
    return out


def assemble(
    cfg: CycleConfig,
    teacher: dict[str, Any],
    cells: list[dict[str, Any]],
    scores: list[dict[str, Any]],
    baselines: dict[str, Any],
    latencies: dict[str, dict[str, float]],
    failures: dict[str, str],
) -> dict[str, Any]:
    """Scorecard of everything, gates for every candidate; written under the workdir."""
    sc = scj.merge(
        scj.from_json(baselines["scores"]), *[scj.from_json(s["scores"]) for s in scores]
    )
    names = {c["name"] for c in cells}
    candidates = []
    for c in cells:
        if c["name"] not in sc["model"].values:
            continue
        gate = check_gates(
            sc, c["name"], cfg.gates, parity=c["parity"], parity_gated=c.get("parity_gated", True)
        )
        lat = latencies.get(c["name"], {})
        candidates.append(
            {
                **{
                    k: c[k]
                    for k in (
                        "name",
                        "id",
                        "label",
                        "method",
                        "onnx",
                        "size_bytes",
                        "params",
                        "sparsity",
                        "parity",
                        "quantization_error",
                        "dir",
                    )
                },
                "latency_ms_batch1": lat.get("batch1_ms"),
                "latency_ms_batch16": lat.get("batch16_ms"),
                "gate": gate.to_dict(),
            }
        )
    eid = "e-" + stable_hash(
        {
            "teacher": teacher["id"],
            "cells": sorted(c["id"] for c in cells),
            "gates": cfg.gates.model_dump(),
            "evaluate": cfg.evaluate.model_dump(),
        },
        12,
    )
    out = Path(cfg.workdir) / "evaluations" / eid
    out.mkdir(parents=True, exist_ok=True)
    sc.to_dataset(name="score").to_netcdf(out / "scorecard.nc")
    record = {
        "id": eid,
        "dir": str(out),
        "teacher": {
            "id": teacher["id"],
            "onnx": str(Path(teacher["dir"]) / "model.onnx"),
            "size_bytes": teacher["onnx_size_bytes"],
            "params": teacher["params"],
            "latency_ms_batch1": latencies.get("teacher", {}).get("batch1_ms"),
            "latency_ms_batch16": latencies.get("teacher", {}).get("batch16_ms"),
        },
        "test_window": baselines["test_window"],
        "n_inits": baselines["n_inits"],
        "scorecard": scj.to_json(sc),
        "candidates": candidates,
        "failures": [{"name": n, "error": e} for n, e in failures.items() if n not in names],
    }
    write_json_atomic(out / "evaluation.json", record)
    try:
        from wxmodels.skill.plots import plot_rmse_vs_lead

        record["plots"] = [str(plot_rmse_vs_lead(sc, out / "rmse_vs_lead.png"))]
        write_json_atomic(out / "evaluation.json", record)
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    return record
