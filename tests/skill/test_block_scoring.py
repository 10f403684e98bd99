"""Scoring block of inits by block: the per-init spatial means of each block, concatenated and
averaged, are the scores of all inits at once (so a long test window on a global grid is
scored in bounded memory with the same numbers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from tests.factories import tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.data.ingest import ingest
from wxmodels.skill.seeps import seeps_climatology
from wxmodels.skill.verify import reduce_times, scorecard, scorecard_times


def _ds(a: np.ndarray, times: pd.DatetimeIndex) -> xr.Dataset:
    names = ["2m_temperature", "total_precipitation_rate"]
    n, nl, _, h, w = a.shape
    return xr.Dataset(
        {v: (("time", "lead_time", "lat", "lon"), a[:, :, i]) for i, v in enumerate(names)},
        coords={
            "time": times,
            "lead_time": [1.0, 6.0, 24.0][:nl],
            "lat": np.linspace(-60, 60, h),
            "lon": np.arange(w) * 360.0 / w,
        },
    )


def test_blocks_reduce_to_the_scores_of_all_inits():
    rng = np.random.default_rng(0)
    n, h, w = 9, 5, 6
    times = pd.date_range("2020-01-01", periods=n, freq="6h")
    truth = rng.gamma(0.5, 1.0, (n, 3, 2, h, w)).astype(np.float32)
    truth[2, 1, 0, 1, 1] = np.nan  # a missing point
    truth[3, 0, 1] = 0.0  # a dry field: its ACC is undefined and skipped
    fc = truth + rng.normal(0, 0.3, truth.shape).astype(np.float32)
    clim = np.full_like(truth, float(np.nanmean(truth)))
    seeps = {
        "total_precipitation_rate": seeps_climatology(
            rng.gamma(0.5, 1.0, (60, h, w)), np.ones((h, w), bool), 0.25
        )
    }
    mask = np.zeros((h, w), bool)
    mask[:2] = True
    regions = {"north": mask}

    def card(sl):
        return (
            {"m": _ds(fc[sl], times[sl]), "clim": _ds(clim[sl], times[sl])},
            _ds(truth[sl], times[sl]),
            _ds(clim[sl], times[sl]),
        )

    whole = scorecard(*card(slice(None)), seeps, regions)
    parts = [scorecard_times(*card(slice(a, a + 4)), seeps, regions) for a in (0, 4, 8)]
    blocked = reduce_times(xr.concat(parts, dim="time"))
    assert blocked.dims == whole.dims
    np.testing.assert_allclose(blocked.values, whole.values, rtol=1e-12, equal_nan=True)
    assert np.isfinite(whole.sel(metric="seeps", variable="total_precipitation_rate")).all()


def test_baselines_scored_in_blocks_of_one_init_score_as_in_one_block(tmp_path):
    from wxmodels.pipeline import evaluate as ev

    raw = tiny_cycle_config(tmp_path)
    raw["evaluate"] = {**raw.get("evaluate", {}), "init_stride_h": 6}
    cfg = CycleConfig.model_validate(raw)
    ingest(cfg.data)
    one = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"block_mb": 1e4})})
    tiny = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"block_mb": 1e-6})})
    s = ev.setup(tiny)
    assert len(s.inits) >= 4 and len(s.blocks(3)) == len(s.inits)  # one init per block
    assert len(ev.setup(one).blocks(3)) == 1
    a, b = ev.score_baselines(one), ev.score_baselines(tiny)
    assert {"persistence", "climatology"} <= set(a.scores)
    for model, metrics in a.scores.items():
        for metric, per_var in metrics.items():
            for v, leads in per_var.items():
                for lead, x in leads.items():
                    y = b.scores[model][metric][v][lead]
                    assert (x is None and y is None) or np.isclose(x, y, rtol=1e-9), (
                        model,
                        metric,
                        v,
                        lead,
                        x,
                        y,
                    )
    ea, eb = (ev.load_errors([r.errors]) for r in (a, b))
    assert ea is not None and eb is not None
    xr.testing.assert_allclose(ea, eb)
