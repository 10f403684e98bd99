"""Validate: forecasts of every model on the test window, baselines, latency, scorecard, gates."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.config.cycle import CycleConfig
from wxmodels.data.fields import Fields, fit_climatology
from wxmodels.data.lazy import ClimArray
from wxmodels.errors import DataError
from wxmodels.export.onnx import OrtForecaster, measure_latency
from wxmodels.pipeline import champion
from wxmodels.pipeline.context import RunData, load_run_data, set_threads
from wxmodels.pipeline.records import (
    BaselineScores,
    Candidate,
    CellRecord,
    Evaluation,
    Failure,
    Gate,
    Incumbent,
    IncumbentVerdict,
    Latency,
    ModelScores,
    TeacherRecord,
    TeacherSummary,
)
from wxmodels.schema import TIME
from wxmodels.skill import scorecard as scj
from wxmodels.skill.baselines import (
    CellLinearBaseline,
    LinearBaseline,
    RidgeBaseline,
    fit_cell_linear,
    fit_linear,
    fit_ridge,
    init_blocks,
)
from wxmodels.skill.gates import check_gates, check_latency
from wxmodels.skill.metrics import mse
from wxmodels.skill.pareto import mean_relative_rmse, pareto_front
from wxmodels.skill.seeps import seeps_climatology
from wxmodels.skill.verify import (
    PRECIP,
    as_dataset,
    climatology_forecast,
    persistence_forecast,
    reduce_times,
    run_forecasts,
    scorecard_times,
    truth_at_leads,
)
from wxmodels.utils import stable_hash

__all__ = [
    "assemble",
    "eval_inits",
    "load_errors",
    "measure_latencies",
    "model_forecasts",
    "regression_forecasts",
    "score_baselines",
    "score_model",
    "setup",
]

log = logging.getLogger(__name__)


def max_history(cfg: CycleConfig) -> int:
    """The longest input history of any model in the cycle (so all share the same inits)."""
    h = [cfg.net.history, 2]  # 2: the linear baseline uses two steps
    for c in cfg.compress.cells:
        h += [int(k) for s in c.steps if (k := getattr(s, "history", None))]
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
    return inits if cfg.evaluate.max_inits is None else spaced(inits, cfg.evaluate.max_inits)


@dataclass
class Setup:
    """What every scoring task of one evaluation shares. The truth and the verification
    climatology are built per block of inits (:meth:`blocks`), so scoring holds one block's
    forecasts at a time, whatever the number of inits."""

    run: RunData
    inits: np.ndarray
    steps: list[int]
    clim_at: Any
    seeps: dict
    regions: dict[str, np.ndarray]
    budget_mb: float = 128.0

    def blocks(self, models: int) -> list[np.ndarray]:
        """The inits in blocks that take about ``budget_mb`` while ``models`` forecasts are
        scored (truth, climatology, the forecasts, and ten more such arrays of the metrics'
        temporaries); one block on small grids."""
        f = self.run.fields
        arrays = 2 + models + 10
        per_init = 4.0 * len(self.steps) * len(f.variables) * f.valid.size * arrays
        return init_blocks(self.inits, per_init, self.budget_mb)

    def truth(self, idx: np.ndarray) -> xr.Dataset:
        f = self.run.fields
        return as_dataset(truth_at_leads(f, idx, self.steps), f, idx, self.steps)

    def clim(self, idx: np.ndarray) -> xr.Dataset:
        f = self.run.fields
        arr = climatology_forecast(self.clim_at, f, idx, self.steps)
        return as_dataset(arr, f, idx, self.steps)


def _regions(cfg: CycleConfig, run: RunData) -> dict[str, np.ndarray]:
    f = run.fields
    out = {}
    land = f.valid
    try:
        st = run.store.static()
        if "land_sea_mask" in st:
            land = st["land_sea_mask"].values > 0.5
    except Exception:
        pass
    lat2, lon2 = np.meshgrid(f.lat, f.lon, indexing="ij")
    for name, r in cfg.evaluate.regions.items():
        m = np.ones_like(f.valid)
        if r.lat_bounds:
            m &= (lat2 >= min(r.lat_bounds)) & (lat2 <= max(r.lat_bounds))
        if r.lon_bounds:
            m &= (lon2 >= r.lon_bounds[0]) & (lon2 <= r.lon_bounds[1])
        if r.land_only:
            m &= land
        if not (m & f.valid).any():
            raise ValueError(f"region {name} holds no valid grid point")
        out[name] = m
    return out


def setup(cfg: CycleConfig) -> Setup:
    """Load the data and build the truth, the verification climatology, SEEPS climatologies
    and region masks for the test window."""
    run = load_run_data(cfg)
    f = run.fields
    inits = eval_inits(cfg, run)
    steps = lead_steps(cfg, f.step_hours)
    source = cfg.evaluate.climatology
    if source == "store":
        stats = run.store.statistics()

        def clim_at(hours):
            return stats.climatology(hours, f.variables, f.valid)
    else:
        acc = fit_climatology(f, run.split.train)

        def clim_at(hours):
            return acc.evaluate(hours, f.valid)

    seeps = {}
    if PRECIP in f.variables:
        a, b = run.split.train
        steps_fit = np.arange(a, b)
        if f.streamed:  # evenly spaced chunks of the training window: bounded memory
            steps_fit = spaced(steps_fit, cfg.stream.max_fit_inits, _run(f))
        rate = f.data[steps_fit, f.variables.index(PRECIP)]
        seeps[PRECIP] = seeps_climatology(rate, f.valid, cfg.evaluate.seeps_dry_mm / f.step_hours)
    return Setup(run, inits, steps, clim_at, seeps, _regions(cfg, run), cfg.evaluate.block_mb)


ForecastsAt = Callable[[np.ndarray, xr.Dataset], dict[str, xr.Dataset]]
"""``(inits, their climatology) -> {name: forecasts}`` for one block of inits."""


def _card(s: Setup, forecasts_at: ForecastsAt, n_models: int, errors: Path) -> dict[str, Any]:
    """Scorecard JSON of the forecasts ``forecasts_at`` gives, block of inits by block (the
    per-init spatial means accumulated, then averaged over all inits: the same scores as in
    one block), and their per-init MSEs written to ``errors``."""
    per_time, per_init = [], []
    for idx in s.blocks(n_models):
        truth, clim = s.truth(idx), s.clim(idx)
        fcs = forecasts_at(idx, clim)
        per_time.append(scorecard_times(fcs, truth, clim, s.seeps, s.regions))
        per_init.append(
            xr.concat(
                [mse(fc, truth) for fc in fcs.values()],
                dim=pd.Index(list(fcs), name="model"),
            )
        )
        del truth, clim, fcs
    sc = reduce_times(xr.concat(per_time, dim=TIME))
    errs = xr.concat(per_init, dim=TIME)
    errors.parent.mkdir(parents=True, exist_ok=True)
    tmp = errors.with_name(errors.name + ".partial")
    # NetCDF3 through scipy: score tasks run in threads of one process, and the HDF5 library
    # behind NetCDF4 is not thread-safe (concurrent writes crash the process)
    errs.astype(np.float64).to_netcdf(tmp, engine="scipy")
    tmp.replace(errors)
    return {"scores": scj.to_json(sc), "regions": scj.regions_json(sc), "errors": str(errors)}


def _errors_path(cfg: CycleConfig, s: Setup, what: str) -> Path:
    f = s.run.fields
    key = stable_hash([what, f.store_version, cfg.evaluate.model_dump(), s.inits.tolist()], 12)
    return Path(cfg.workdir) / "scores" / f"{key}.nc"


def load_errors(paths: list[str | None]) -> xr.Dataset | None:
    """The per-init MSEs of several score records in one Dataset (``None`` if any lacks
    them: the gates then compare point estimates)."""
    if not paths or any(p is None for p in paths):
        return None
    parts = []
    for p in paths:
        with xr.open_dataset(str(p), engine="scipy") as ds:
            parts.append(ds.load())
    seen: dict[str, xr.Dataset] = {}
    for ds in parts:
        for m in ds["model"].values:
            seen[str(m)] = ds.sel(model=[m])
    return xr.concat(list(seen.values()), dim="model")


def _onnx_model(cfg: CycleConfig, onnx_path: str, f: Fields) -> OrtForecaster:
    model = OrtForecaster(onnx_path, threads=cfg.runtime.torch_threads)
    if model.variables is not None and model.variables != f.variables:
        raise DataError(
            f"{onnx_path}: the model's channels are {model.variables}, the store's fields "
            f"{f.variables}: it was trained for another variable order"
        )
    return model


def model_forecasts(
    cfg: CycleConfig, onnx_path: str, s: Setup | None = None
) -> tuple[np.ndarray, Setup]:
    """The forecasts ``(N, L, V, H, W)`` that the evaluation scores for one ONNX model (run in
    onnxruntime) at the test window's inits, with the setup they came from."""
    s = s or setup(cfg)
    f = s.run.fields
    model = _onnx_model(cfg, onnx_path, f)
    return run_forecasts(model, f, s.inits, s.steps, history=model.history), s


def score_model(cfg: CycleConfig, name: str, onnx_path: str) -> ModelScores:
    """Score one ONNX model (run in onnxruntime) on the test window, block of inits by block."""
    t0 = time.perf_counter()
    set_threads(cfg.runtime.torch_threads)
    s = setup(cfg)
    f = s.run.fields
    model = _onnx_model(cfg, onnx_path, f)

    def forecasts_at(idx: np.ndarray, _clim: xr.Dataset) -> dict[str, xr.Dataset]:
        arr = run_forecasts(model, f, idx, s.steps, history=model.history)
        return {name: as_dataset(arr, f, idx, s.steps)}

    return ModelScores(
        name=name,
        **_card(s, forecasts_at, 1, _errors_path(cfg, s, f"{name}:{onnx_path}")),
        n_inits=len(s.inits),
        wall_s=time.perf_counter() - t0,
    )


def score_baselines(cfg: CycleConfig) -> BaselineScores:
    """The configured baselines on the same inits and leads (regressions fitted on the
    training window, once; forecasts made and scored block of inits by block)."""
    s = setup(cfg)
    f = s.run.fields
    names = [b for b in ("persistence", "climatology") if b in cfg.evaluate.baselines]
    regressions = [b for b in ("linear", "cell_linear", "ridge") if b in cfg.evaluate.baselines]
    fitted, call = fit_regressions(
        regressions,
        f,
        f,
        s.clim_at,
        s.steps,
        s.run.split.inits(f, "train", history=2, lead_steps=max(s.steps)),
        s.run.split.inits(f, "val", history=2, lead_steps=max(s.steps)),
        max_fit=cfg.stream.max_fit_inits if f.streamed else None,
        run=_run(f),
    )

    def forecasts_at(idx: np.ndarray, clim: xr.Dataset) -> dict[str, xr.Dataset]:
        fc = {}
        if "persistence" in names:
            fc["persistence"] = as_dataset(persistence_forecast(f, idx, s.steps), f, idx, s.steps)
        if "climatology" in names:
            fc["climatology"] = clim
        for n, m in fitted.items():
            fc[n] = as_dataset(m.predict(f, call, idx), f, idx, s.steps)
        return fc

    every = names + list(fitted)
    return BaselineScores(
        **_card(s, forecasts_at, len(every), _errors_path(cfg, s, f"baselines:{sorted(every)}")),
        n_inits=len(s.inits),
        test_window=(str(f.times[s.inits[0]]), str(f.times[s.inits[-1]])),
    )


Regression = LinearBaseline | CellLinearBaseline | RidgeBaseline


def fit_regressions(
    names: Sequence[str],
    fit_on: Fields,
    fields: Fields,
    clim_at: Callable[[np.ndarray], np.ndarray],
    steps: list[int],
    train: np.ndarray,
    val: np.ndarray,
    *,
    max_fit: int | None = None,
    run: int = 1,
) -> tuple[dict[str, Regression], Any]:
    """The regression baselines ``names`` fitted on ``fit_on`` at the ``train`` inits (ridge
    tuned at the ``val`` inits), and the climatology of ``fields`` their ``predict`` takes.
    ``max_fit``: fit on at most about that many inits (evenly spaced runs of ``run``), for
    streamed fields."""
    if max_fit is not None:
        train, val = spaced(train, max_fit, run), spaced(val, max_fit, run)
    call_fit = _clim_array(clim_at, fit_on)
    call = call_fit if fit_on is fields else _clim_array(clim_at, fields)
    fits: dict[str, Callable[[], Regression]] = {
        "linear": lambda: fit_linear(fit_on, call_fit, train, steps),
        "cell_linear": lambda: fit_cell_linear(fit_on, call_fit, train, steps),
        "ridge": lambda: fit_ridge(fit_on, call_fit, train, val, steps),
    }
    return {n: fits[n]() for n in names}, call


def regression_forecasts(
    names: Sequence[str],
    fit_on: Fields,
    fields: Fields,
    clim_at: Callable[[np.ndarray], np.ndarray],
    inits: np.ndarray,
    steps: list[int],
    train: np.ndarray,
    val: np.ndarray,
    *,
    max_fit: int | None = None,
    run: int = 1,
) -> dict[str, xr.Dataset]:
    """The regression baselines ``names`` (see :func:`fit_regressions`) forecasting
    ``fields`` from ``inits``."""
    fitted, call = fit_regressions(
        names, fit_on, fields, clim_at, steps, train, val, max_fit=max_fit, run=run
    )
    return {
        n: as_dataset(m.predict(fields, call, inits), fields, inits, steps)
        for n, m in fitted.items()
    }


def spaced(idx: np.ndarray, n: int, run: int = 1) -> np.ndarray:
    """At most about ``n`` of ``idx``, evenly spaced (all of them when there are fewer); with
    ``run > 1``, whole runs of the indices that share ``i // run`` (a store chunk: each chunk
    read is then used whole, instead of for one step)."""
    idx = np.asarray(idx)
    if len(idx) <= n:
        return idx
    if run <= 1:
        return idx[np.linspace(0, len(idx) - 1, n).round().astype(int)]
    groups = idx // run
    uniq = np.unique(groups)
    k = min(len(uniq), max(1, int(np.ceil(n / run))))
    keep = uniq[np.linspace(0, len(uniq) - 1, k).round().astype(int)]
    return idx[np.isin(groups, keep)]


def _run(f: Fields) -> int:
    """Steps per store chunk of streamed fields (1 in memory)."""
    return int(f.data.time_chunk) if f.streamed else 1  # type: ignore[attr-defined]


def _clim_array(clim_at: Callable[[np.ndarray], np.ndarray], f: Fields) -> Any:
    """The climatology at every step of ``f``: evaluated as it is indexed when ``f`` is
    streamed, in memory otherwise."""
    if f.streamed:
        return ClimArray(clim_at, f.hours, len(f.variables), f.valid.shape)
    return clim_at(f.hours)


def measure_latencies(cfg: CycleConfig, models: dict[str, str]) -> dict[str, Latency]:
    """onnxruntime latency (ms, median) at batch 1 and 16 for each model, one after another."""
    run = load_run_data(cfg)
    f = run.fields
    out = {}
    for name, path in models.items():
        h = OrtForecaster(path, threads=cfg.evaluate.latency_threads).history
        idx = run.split.inits(f, "val", history=h, lead_steps=1)[:16]
        state = np.stack([f.data[i - h + 1 : i + 1] for i in idx]).astype(np.float32)
        tm = f.hours[idx].astype(np.float32)
        out[name] = Latency(
            **{
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
        )
    return out


def _merge_regions(parts: list[ModelScores | BaselineScores]) -> dict[str, xr.DataArray]:
    names = {r for p in parts for r in p.regions}
    return {
        r: scj.merge(*[scj.from_json(p.regions[r]) for p in parts if r in p.regions]) for r in names
    }


def assemble(
    cfg: CycleConfig,
    teacher: TeacherRecord,
    cells: list[CellRecord],
    scores: list[ModelScores],
    baselines: BaselineScores,
    latencies: dict[str, Latency],
    failures: dict[str, str],
    incumbent: Incumbent | None = None,
) -> Evaluation:
    """Scorecard of everything, gates for every candidate; written under the workdir.

    ``incumbent``: the registry's current teacher (:func:`~wxmodels.pipeline.champion.challenge`),
    scored as ``"incumbent"``; the record then carries the promotion verdict on the new teacher.
    """
    parts: list[ModelScores | BaselineScores] = [baselines, *scores]
    sc = scj.merge(*[scj.from_json(p.scores) for p in parts])
    regions = _merge_regions(parts)
    names = {c.name for c in cells}
    none = Latency()
    t_lat = latencies.get("teacher", none)
    scorecard = scj.to_json(sc)
    errors = load_errors([p.errors for p in parts])
    gated = []
    intervals: dict[str, dict] = {}
    for c in cells:
        if c.name not in sc["model"].values:
            continue
        intervals[c.name] = {}
        gate = check_gates(
            sc,
            c.name,
            cfg.gates,
            parity=c.parity,
            parity_gated=c.parity_gated,
            regions=regions,
            errors=errors,
            intervals=intervals[c.name],
        )
        lat = latencies.get(c.name, none)
        gate = check_latency(gate, lat.batch1_ms, t_lat.batch1_ms, cfg.gates.max_latency_ratio)
        gated.append((c, lat, Gate(**gate.to_dict()), mean_relative_rmse(scorecard, c.name)))
    # the skill / size / speed front (every objective minimised)
    front = pareto_front(
        {
            c.name: (
                c.pack_bytes,
                lat.batch1_ms if lat.batch1_ms is not None else np.inf,
                rel,
            )
            for c, lat, _, rel in gated
        }
    )
    candidates = [
        Candidate(
            **c.model_dump(
                include={
                    "name",
                    "id",
                    "label",
                    "method",
                    "onnx",
                    "dir",
                    "pack_bytes",
                    "onnx_bytes",
                    "params",
                    "sparsity",
                    "parity",
                    "quantization_error",
                    "climatology_bytes",
                    "macs",
                }
            ),
            latency_ms_batch1=lat.batch1_ms,
            latency_ms_batch16=lat.batch16_ms,
            gate=gate,
            intervals=intervals.get(c.name, {}),
            relative_rmse=rel,
            pareto=c.name in front,
        )
        for c, lat, gate, rel in gated
    ]
    eid = "e-" + stable_hash(
        {
            "teacher": teacher.id,
            "cells": sorted(c.id for c in cells),
            "gates": cfg.gates.model_dump(),
            "evaluate": cfg.evaluate.model_dump(),
            "incumbent": incumbent and incumbent.version,
        },
        12,
    )
    out = Path(cfg.workdir) / "evaluations" / eid
    out.mkdir(parents=True, exist_ok=True)
    full = xr.concat([sc, *regions.values()], dim=xr.Variable("region", ["all", *regions]))
    full.to_dataset(name="score").to_netcdf(out / "scorecard.nc")
    inc = None
    if incumbent is not None:
        inc = IncumbentVerdict(
            version=incumbent.version,
            teacher_id=incumbent.teacher_id,
            store_version=incumbent.store_version,
            comparable=incumbent.comparable,
            verdict=champion.verdict(cfg, incumbent, scorecard, failures.get("incumbent"), errors),
        )
    from wxmodels.skill.plots import plot_heatmap, plot_pareto, plot_skill_vs_lead

    plots = [
        str(plot_skill_vs_lead(sc, out / "rmse_vs_lead.png", "rmse", errors)),
        str(plot_skill_vs_lead(sc, out / "acc_vs_lead.png", "acc")),
    ]
    if candidates:
        plots.append(
            str(plot_heatmap(sc, [c.name for c in candidates], out / "scorecard_heatmap.png"))
        )
        rows = [
            {
                "name": c.name,
                "pack_bytes": float(c.pack_bytes),
                "relative_rmse": c.relative_rmse,
                "passed": c.gate.passed,
            }
            for c in candidates
        ]
        plots.append(str(plot_pareto(rows, front, out / "pareto.png", teacher.onnx_bytes)))
    record = Evaluation(
        id=eid,
        dir=str(out),
        teacher=TeacherSummary(
            id=teacher.id,
            onnx=teacher.onnx,
            onnx_bytes=teacher.onnx_bytes,
            params=teacher.params,
            climatology_bytes=teacher.climatology_bytes,
            latency_ms_batch1=t_lat.batch1_ms,
            latency_ms_batch16=t_lat.batch16_ms,
        ),
        test_window=baselines.test_window,
        n_inits=baselines.n_inits,
        scorecard=scorecard,
        regions={r: scj.to_json(card) for r, card in regions.items()},
        candidates=candidates,
        failures=[
            Failure(name=n, error=e)
            for n, e in failures.items()
            if n not in names and n != "incumbent"
        ],
        incumbent=inc,
        pareto=front,
        plots=plots,
    )
    record.write(out / "evaluation.json")
    return record
