"""SEEPS, the linear-regression baseline, wind speed and region scoring against hand values."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.factories import make_fields
from wxmodels.geometry import lat_weights_np
from wxmodels.skill import metrics
from wxmodels.skill.baselines import fit_linear
from wxmodels.skill.seeps import SeepsClimatology, seeps, seeps_climatology
from wxmodels.skill.verify import add_wind_speed, scorecard


def _da(values, lat):
    values = np.asarray(values, dtype=float)
    times = pd.date_range("2020-01-01", periods=values.shape[0], freq="h")
    return xr.DataArray(
        values,
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": lat, "lon": np.arange(values.shape[2])},
    )


def test_seeps_climatology_by_hand():
    # one point: 6 values, dry threshold 0.25 -> 2 dry of 6; wet 2/3 quantile by numpy
    vals = np.array([0.0, 0.1, 1.0, 2.0, 3.0, 4.0]).reshape(6, 1, 1)
    c = seeps_climatology(vals, np.ones((1, 1), bool), dry=0.25)
    assert c.p1[0, 0] == pytest.approx(2 / 6)
    assert c.heavy[0, 0] == pytest.approx(np.quantile([1.0, 2.0, 3.0, 4.0], 2 / 3))


def test_seeps_by_hand_with_mask_and_uneven_latitudes():
    lat = np.array([0.0, 10.0, 30.0])
    p1 = np.array([[0.5], [0.3], [0.9]])  # the last row is left out (p1 >= 0.85)
    clim = SeepsClimatology(p1, np.full((3, 1), 2.0), dry=0.25)
    truth = _da([[[0.0], [1.0], [5.0]], [[3.0], [0.0], [1.0]]], lat)
    fc = _da([[[0.0], [3.0], [0.0]], [[0.0], [np.nan], [1.0]]], lat)
    # categories: 0 dry (< 0.25), 1 light (< 2), 2 heavy
    m = clim.matrix()
    w = lat_weights_np(lat)
    # time 0: row 0 dry/dry -> 0; row 1 heavy/light -> m[2, 1]; row 2 excluded
    s0 = (w[0] * 0.0 + w[1] * m[2, 1, 1, 0]) / (w[0] + w[1])
    # time 1: row 0 dry/heavy -> m[0, 2]; row 1 NaN forecast; row 2 excluded
    s1 = m[0, 2, 0, 0]
    assert float(seeps(fc, truth, clim)) == pytest.approx((s0 + s1) / 2)
    # by the published formula: m[2, 1] = 0.5 * 3 / (2 + p1), m[0, 2] = 0.5 * 4 / (1 - p1)
    assert m[2, 1, 1, 0] == pytest.approx(1.5 / 2.3)
    assert m[0, 2, 0, 0] == pytest.approx(2.0 / 0.5)
    assert float(seeps(truth, truth, clim)) == 0.0


def test_linear_baseline_recovers_a_known_process():
    """Anomalies following x(t+1) = 0.8 x(t) + noise: the lead-L coefficient on x(t) is
    0.8**L, the one on x(t-1) about 0, and the forecasts are the conditional means."""
    f = make_fields(nt=400, nv=1, masked=True)
    rng = np.random.default_rng(0)
    x = np.zeros_like(f.data)
    x[0] = rng.normal(size=x.shape[1:])
    for t in range(1, len(x)):
        x[t] = 0.8 * x[t - 1] + 0.6 * rng.normal(size=x.shape[1:])
    clim = np.full_like(f.data, 280.0)
    f.data[:] = np.where(f.valid, clim + x, np.nan)
    inits = np.arange(2, 390)
    lb = fit_linear(f, clim, inits, [1, 3], ridge=0.0)
    a1, b1, c1 = lb.coef[0, 0]
    assert a1 == pytest.approx(0.8, abs=0.02) and abs(b1) < 0.02 and abs(c1) < 0.02
    assert lb.coef[1, 0, 0] == pytest.approx(0.8**3, abs=0.03)
    some = inits[:5]
    pred = lb.predict(f, clim, some)
    expect = clim[some + 1] + a1 * x[some] + b1 * x[some - 1] + c1
    np.testing.assert_allclose(pred[:, 0][..., f.valid], expect[..., f.valid], atol=1e-4)
    assert np.isnan(pred[:, :, :, ~f.valid]).all()


def test_wind_speed_from_components():
    lat = np.array([50.0, 51.0])
    u = _da(np.full((1, 2, 2), 3.0), lat)
    v = _da(np.full((1, 2, 2), -4.0), lat)
    ds = add_wind_speed(xr.Dataset({"10m_u_component_of_wind": u, "10m_v_component_of_wind": v}))
    np.testing.assert_allclose(ds["10m_wind_speed"].values, 5.0)


def test_region_scores_only_their_points():
    lat = np.array([0.0, 10.0, 30.0])
    truth = xr.Dataset({"t": _da(np.zeros((2, 3, 2)), lat).expand_dims(lead_time=[1.0], axis=1)})
    err = np.zeros((2, 3, 2))
    err[:, 0, :] = 1.0  # errors only in the first row
    fc = xr.Dataset({"t": _da(err, lat).expand_dims(lead_time=[1.0], axis=1)})
    mask = np.zeros((3, 2), bool)
    mask[1:, :] = True
    sc = scorecard({"m": fc}, truth, truth, regions={"north": mask})
    assert (
        float(sc.sel(model="m", metric="rmse", variable="t", region="north", lead_time=1.0)) == 0.0
    )
    w = lat_weights_np(lat)
    whole = np.sqrt(w[0] / w.sum())
    assert float(
        sc.sel(model="m", metric="rmse", variable="t", region="all", lead_time=1.0)
    ) == pytest.approx(whole)
    assert metrics.rmse(fc["t"], truth["t"]).item() == pytest.approx(whole)
