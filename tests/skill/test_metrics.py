"""Each metric against a value computed by hand, with a NaN mask and uneven latitudes."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from wxmodels.geometry import lat_weights_np
from wxmodels.skill import metrics


def _da(values, lat, times=None):
    values = np.asarray(values, dtype=float)
    times = (
        times
        if times is not None
        else pd.date_range("2020-01-01", periods=values.shape[0], freq="h")
    )
    return xr.DataArray(
        values,
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": lat, "lon": np.arange(values.shape[2])},
    )


def test_lat_weights_by_hand():
    lat = np.array([0.0, 10.0, 30.0])  # uneven
    # bounds: [-5, 5], [5, 20], [20, 40]
    raw = np.array(
        [
            np.sin(np.radians(5)) - np.sin(np.radians(-5)),
            np.sin(np.radians(20)) - np.sin(np.radians(5)),
            np.sin(np.radians(40)) - np.sin(np.radians(20)),
        ]
    )
    np.testing.assert_allclose(lat_weights_np(lat), raw / raw.mean())
    # a global grid reaching the poles: bounds at +-90, as in WeatherBench 2
    g = np.array([-90.0, 0.0, 90.0])
    raw = np.array(
        [np.sin(np.radians(-45)) + 1, 2 * np.sin(np.radians(45)), 1 - np.sin(np.radians(45))]
    )
    np.testing.assert_allclose(lat_weights_np(g), raw / raw.mean())
    assert lat_weights_np(lat[::-1]).tolist() == lat_weights_np(lat)[::-1].tolist()


def test_rmse_bias_mae_by_hand_with_mask():
    lat = np.array([0.0, 10.0, 30.0])
    w = lat_weights_np(lat)
    truth = _da(np.zeros((2, 3, 2)), lat)
    fc = np.array(
        [[[1.0, 3.0], [2.0, np.nan], [0.0, 4.0]], [[2.0, 2.0], [1.0, 1.0], [np.nan, np.nan]]]
    )
    f = _da(fc, lat)
    # by hand: per time, weighted mean over valid points, then sqrt of the time mean
    mse = []
    bias = []
    for t in range(2):
        num = den = b = 0.0
        for i in range(3):
            for j in range(2):
                if np.isfinite(fc[t, i, j]):
                    num += w[i] * fc[t, i, j] ** 2
                    b += w[i] * fc[t, i, j]
                    den += w[i]
        mse.append(num / den)
        bias.append(b / den)
    assert float(metrics.rmse(f, truth)) == pytest.approx(np.sqrt(np.mean(mse)))
    assert float(metrics.bias(f, truth)) == pytest.approx(np.mean(bias))
    assert float(metrics.mae(f, truth)) == pytest.approx(np.mean(bias))  # all errors >= 0
    # NaN in the truth is masked the same way
    truth2 = truth.copy()
    truth2[0, 0, 0] = np.nan
    f2 = f.copy()
    f2[0, 0, 0] = 0.0
    assert float(metrics.rmse(f2, truth2)) == pytest.approx(
        float(metrics.rmse(f.where(truth2.notnull()), truth2))
    )


def test_acc_perfect_climatology_and_by_hand():
    rng = np.random.default_rng(0)
    lat = np.array([40.0, 45.0, 55.0])
    clim = _da(rng.normal(size=(3, 3, 4)), lat)
    truth = clim + _da(rng.normal(size=(3, 3, 4)), lat)
    assert float(metrics.acc(truth, truth, clim)) == pytest.approx(1.0)
    assert float(metrics.acc(clim, truth, clim)) == 0.0
    assert float(metrics.acc(2 * truth - clim, truth, clim)) == pytest.approx(1.0)  # scale-free
    f = clim + _da(rng.normal(size=(3, 3, 4)), lat)
    w = lat_weights_np(lat)[:, None]
    accs = []
    for t in range(3):
        fa = (f - clim).values[t]
        oa = (truth - clim).values[t]
        accs.append((w * fa * oa).sum() / np.sqrt((w * fa**2).sum() * (w * oa**2).sum()))
    assert float(metrics.acc(f, truth, clim)) == pytest.approx(np.mean(accs))


def test_persistence_rmse_at_lead_zero_is_zero():
    from tests.factories import make_fields
    from wxmodels.skill.verify import persistence_forecast, truth_at_leads

    f = make_fields(nt=30)
    inits = np.arange(5, 20)
    p = persistence_forecast(f, inits, [0, 1])
    t = truth_at_leads(f, inits, [0, 1])
    lat = f.lat
    err0 = metrics.rmse(_da(p[:, 0, 0], lat), _da(t[:, 0, 0], lat))
    err1 = metrics.rmse(_da(p[:, 1, 0], lat), _da(t[:, 1, 0], lat))
    assert float(err0) == 0.0 and float(err1) > 0
