"""The promotion rule for a retrained teacher against the registry's current one."""

import pytest

from tests.factories import tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline.champion import compare_teachers


def _cfg(tmp_path, **promote):
    raw = tiny_cycle_config(tmp_path)
    raw["promote"].update(promote)
    return CycleConfig.model_validate(raw)


def _entry(scale: dict[str, float]) -> dict:
    return {"rmse": {v: {"1": 1.0 * s, "3": 2.0 * s, "6": 3.0 * s} for v, s in scale.items()}}


VARS = ["2m_temperature", "10m_u_component_of_wind"]


def test_equal_or_better_is_promoted(tmp_path):
    cfg = _cfg(tmp_path)
    same = compare_teachers(_entry(dict.fromkeys(VARS, 1.0)), _entry(dict.fromkeys(VARS, 1.0)), cfg)
    assert same.promote and same.mean_ratio == pytest.approx(1.0) and not same.reasons
    better = compare_teachers(
        _entry(dict.fromkeys(VARS, 0.9)), _entry(dict.fromkeys(VARS, 1.0)), cfg
    )
    assert better.promote and better.mean_ratio == pytest.approx(0.9)


def test_worse_beyond_tolerance_is_refused_with_the_reason(tmp_path):
    cfg = _cfg(tmp_path, teacher_tolerance=0.02)
    v = compare_teachers(_entry(dict.fromkeys(VARS, 1.05)), _entry(dict.fromkeys(VARS, 1.0)), cfg)
    assert not v.promote and v.mean_ratio == pytest.approx(1.05)
    assert "tolerance" in v.reasons[0]
    within = compare_teachers(
        _entry(dict.fromkeys(VARS, 1.01)), _entry(dict.fromkeys(VARS, 1.0)), cfg
    )
    assert within.promote


def test_one_variable_much_worse_is_refused_even_if_the_mean_is_fine(tmp_path):
    cfg = _cfg(tmp_path, teacher_tolerance=0.05, teacher_max_regression=0.10)
    new = _entry({VARS[0]: 0.85, VARS[1]: 1.15})
    v = compare_teachers(new, _entry(dict.fromkeys(VARS, 1.0)), cfg)
    assert v.mean_ratio == pytest.approx(1.0)
    assert not v.promote and v.worst["variable"] == VARS[1]
    assert "1.150x" in v.reasons[0]


def test_missing_or_nan_scores_block_the_promotion(tmp_path):
    cfg = _cfg(tmp_path)
    new = _entry(dict.fromkeys(VARS, 1.0))
    new["rmse"][VARS[0]]["6"] = float("nan")
    assert not compare_teachers(new, _entry(dict.fromkeys(VARS, 1.0)), cfg).promote


def test_a_regression_within_noise_does_not_block_but_a_real_one_does(tmp_path):
    """Per-init errors where the new teacher is 12 % worse at one lead on average but with
    errors so noisy that the bootstrap cannot tell: promoted; the same shift on steady errors:
    refused, with the interval."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    cfg = _cfg(tmp_path, teacher_tolerance=0.2, teacher_max_regression=0.10)
    n = 60
    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=n, freq="D")

    def errors(old: np.ndarray, new: np.ndarray) -> xr.Dataset:
        data = {
            v: (("model", "time", "lead_time"), np.stack([new, old])[:, :, None] * np.ones(3))
            for v in VARS
        }
        return xr.Dataset(
            data,
            coords={"model": ["teacher", "incumbent"], "time": times, "lead_time": [1.0, 3.0, 6.0]},
        )

    def entry(e: xr.Dataset, m: str) -> dict:
        r = np.sqrt(e[VARS[0]].sel(model=m).mean("time").values)
        return {"rmse": {v: {"1": r[0], "3": r[1], "6": r[2]} for v in VARS}}

    heavy = rng.pareto(1.5, n) + 0.01  # a few inits dominate: the mean is noise
    noisy = errors(heavy, heavy[::-1] * (1.12**2) * heavy.sum() / heavy[::-1].sum())
    v = compare_teachers(entry(noisy, "teacher"), entry(noisy, "incumbent"), cfg, noisy)
    assert v.worst["ratio"] == pytest.approx(1.12, rel=1e-3)
    assert v.promote, v.reasons
    steady = np.ones(n) + 0.01 * rng.standard_normal(n)
    real = errors(steady, steady * 1.3**2)
    v = compare_teachers(entry(real, "teacher"), entry(real, "incumbent"), cfg, real)
    assert not v.promote and "beyond noise" in v.reasons[-1] and "at 95%" in v.reasons[-1]
