"""Live scoring: the models deployers had, scored on the period that followed."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from wxmodels.config.cycle import CycleConfig
from wxmodels.config.data import SplitConfig
from wxmodels.data.fields import fit_climatology, load_fields, make_split
from wxmodels.data.store import Store
from wxmodels.errors import DataError
from wxmodels.export.onnx import OrtForecaster
from wxmodels.pipeline.evaluate import lead_steps, regression_forecasts
from wxmodels.replay.archive import as_of
from wxmodels.replay.records import LiveScores
from wxmodels.skill import scorecard as scj
from wxmodels.skill.verify import (
    as_dataset,
    climatology_forecast,
    persistence_forecast,
    run_forecasts,
    scorecard,
    truth_at_leads,
)

__all__ = ["KEEP_METRICS", "score_period"]

log = logging.getLogger(__name__)
KEEP_METRICS = ("rmse", "acc", "bias")


def score_period(
    cfg: CycleConfig,
    since: str,
    until: str,
    models: dict[str, tuple[str, str]],
    split: SplitConfig,
) -> LiveScores:
    """Score ``models`` (``{label: (version, onnx path)}``) on the inits in ``[since, until)``
    whose targets the store holds, beside the configured baselines fitted on the data before
    ``since`` (the split ``split``, as the cycle at ``since`` used it).
    """
    t0, t1 = pd.Timestamp(since), pd.Timestamp(until)
    store = Store(cfg.data.store, cfg.data.storage_options)
    f = load_fields(store, cfg.data.variables)
    past = as_of(f, t0)  # all that is fitted below sees nothing from `since` on
    steps = lead_steps(cfg, f.step_hours)
    nets = {
        k: (v, OrtForecaster(p, threads=cfg.runtime.torch_threads)) for k, (v, p) in models.items()
    }
    for label, (_, m) in nets.items():
        if m.variables is not None and m.variables != f.variables:
            raise DataError(f"{label}: the model's channels {m.variables} are not the store's")
    history = max([2, *(m.history for _, m in nets.values())])
    stride = max(1, round(cfg.evaluate.init_stride_h / f.step_hours))
    t = f.times
    lo, hi = int(np.searchsorted(t, t0)), int(np.searchsorted(t, t1))
    idx = np.arange(lo, hi, stride)
    idx = idx[f.windows_ok(idx, history, max(steps))]
    out = {"since": str(t0), "until": str(t1), "models": {k: v for k, (v, _) in nets.items()}}
    if not len(idx):
        return LiveScores(**out, n_inits=0)
    acc = fit_climatology(past, (0, len(past.hours)))

    def clim_at(hours: np.ndarray) -> np.ndarray:
        return acc.evaluate(hours, f.valid)

    truth = as_dataset(truth_at_leads(f, idx, steps), f, idx, steps)
    clim = as_dataset(climatology_forecast(clim_at, f, idx, steps), f, idx, steps)
    fc = {
        label: as_dataset(run_forecasts(m, f, idx, steps, history=m.history), f, idx, steps)
        for label, (_, m) in nets.items()
    }
    names = cfg.evaluate.baselines
    if "persistence" in names:
        fc["persistence"] = as_dataset(persistence_forecast(f, idx, steps), f, idx, steps)
    if "climatology" in names:
        fc["climatology"] = clim
    regressions = [b for b in ("linear", "cell_linear", "ridge") if b in names]
    if regressions:
        sp = make_split(past, split)
        fc.update(
            regression_forecasts(
                regressions,
                past,
                f,
                clim_at,
                idx,
                steps,
                sp.inits(past, "train", history=2, lead_steps=max(steps)),
                sp.inits(past, "val", history=2, lead_steps=max(steps)),
            )
        )
    card = scj.to_json(scorecard(fc, truth, clim))
    return LiveScores(
        **out,
        n_inits=len(idx),
        fit_end=str(past.times[-1]),
        scores={m: {k: v for k, v in c.items() if k in KEEP_METRICS} for m, c in card.items()},
    )
