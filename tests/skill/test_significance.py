"""The paired block bootstrap behind the gates, against cases whose answer is known."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from wxmodels.config.evaluate import GateConfig
from wxmodels.skill.gates import check_gates
from wxmodels.skill.significance import block_length, compare, resample_indices


def _ar1(n: int, phi: float, seed: int, shape=(6, 8)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, *shape))
    for i in range(1, n):
        x[i] = phi * x[i - 1] + np.sqrt(1 - phi**2) * rng.standard_normal(shape)
    return x


def _mse(fc: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return ((fc - truth) ** 2).mean(axis=(1, 2))


@pytest.fixture(scope="module")
def truth():
    return _ar1(600, 0.8, seed=1)


def test_a_shifted_forecast_is_significantly_worse(truth):
    rng = np.random.default_rng(2)
    good = truth + 0.3 * rng.standard_normal(truth.shape)
    shifted = np.roll(good, 1, axis=0)  # yesterday's forecast for today: a timing error
    c = compare(_mse(shifted, truth), _mse(good, truth))
    assert c.worse and c.lower > 0.5 and c.estimate > c.lower
    assert compare(_mse(good, truth), _mse(shifted, truth)).better


def test_a_reseeded_forecast_is_not(truth):
    # the same skill, other noise: neither better nor worse, and never worse beyond 2 %
    runs = [truth + 0.3 * np.random.default_rng(s).standard_normal(truth.shape) for s in range(6)]
    for a in runs[1:]:
        c = compare(_mse(a, truth), _mse(runs[0], truth))
        assert c.lower < 0 < c.upper, c
        assert not c.worse_beyond(0.02)


def test_the_same_scores_give_the_same_verdict(truth):
    a = _mse(truth + 0.3, truth)
    b = _mse(truth + 0.29, truth)
    assert compare(a, b) == compare(a, b)


def test_blocks_follow_the_autocorrelation():
    white = np.random.default_rng(0).standard_normal(2000)
    red = _ar1(2000, 0.95, seed=0, shape=()).reshape(-1)
    assert block_length(white) <= 2
    assert block_length(red) > 10  # e-folding ~20 steps: 0.1 is reached after ~45
    assert block_length(white, min_block=5) == 5
    assert block_length(red[:40]) <= 10  # never more than a quarter of the record


def test_circular_blocks_are_consecutive():
    idx = resample_indices(10, 4, 3)
    assert idx.shape == (3, 10)
    d = np.diff(idx, axis=1) % 10
    assert ((d == 1) | (np.arange(1, 10) % 4 == 0)[None]).all()


def test_nan_inits_are_left_out_of_both():
    a = np.array([1.0, np.nan, 1.0, 1.0] * 10)
    b = np.array([1.0, 1.0, np.nan, 1.0] * 10)
    c = compare(a, b)
    assert c.n == 20 and c.estimate == pytest.approx(0.0)


def _card_and_errors(models: dict[str, np.ndarray], truth: np.ndarray):
    times = pd.date_range("2020-01-01", periods=len(truth), freq="D")
    per = {m: _mse(f, truth) for m, f in models.items()}
    errors = xr.Dataset(
        {
            "t": (
                ("model", "time", "lead_time"),
                np.stack([per[m][:, None] for m in models]),
            )
        },
        coords={"model": list(models), "time": times, "lead_time": [24.0]},
    )
    rmse = np.array([np.sqrt(per[m].mean()) for m in models])
    sc = xr.DataArray(
        rmse[:, None, None, None],
        dims=("model", "metric", "variable", "lead_time"),
        coords={"model": list(models), "metric": ["rmse"], "variable": ["t"], "lead_time": [24.0]},
    )
    return sc, errors


def test_gate_fails_beyond_noise_only(truth):
    """A candidate 0.05 % worse than the teacher (noise, as 0.1916 vs 0.1915) fails a point
    comparison with no tolerance, but passes the bootstrap; one clearly worse fails both, and
    the reason prints the interval."""
    rng = np.random.default_rng(3)
    teacher = truth + 0.3 * rng.standard_normal(truth.shape)
    twin = truth + 0.3 * np.random.default_rng(4).standard_normal(truth.shape)
    twin_err = np.sqrt(_mse(twin, truth).mean())
    teacher_err = np.sqrt(_mse(teacher, truth).mean())
    twin = truth + (twin - truth) * (teacher_err * 1.0005 / twin_err)  # exactly +0.05 %
    worse = truth + 0.45 * rng.standard_normal(truth.shape)
    persistence = np.roll(truth, 1, axis=0)
    sc, errors = _card_and_errors(
        {"teacher": teacher, "twin": twin, "worse": worse, "persistence": persistence}, truth
    )
    strict = GateConfig(max_rmse_increase=0.0, beat_climatology=False, confidence=None)
    assert not check_gates(sc, "twin", strict).passed
    tested = strict.model_copy(update={"confidence": 0.95})
    intervals: dict = {}
    g = check_gates(sc, "twin", tested, errors=errors, intervals=intervals)
    assert g.passed, g.reasons
    est, lo, hi = intervals["t"]["24"]
    assert lo < est < hi and est == pytest.approx(0.0005, abs=1e-6)
    bad = check_gates(sc, "worse", tested, errors=errors)
    assert not bad.passed
    assert "beyond noise" in bad.reasons[0] and "at 95%" in bad.reasons[0]
