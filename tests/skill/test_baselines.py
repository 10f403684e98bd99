"""The regression baselines a statistician fits first: per cell and spatial ridge."""

import numpy as np
import pytest

from tests.factories import make_fields
from wxmodels.skill.baselines import fit_cell_linear, fit_linear, fit_ridge


def _rmse(fc, fields, inits, steps):
    truth = np.stack([fields.data[inits + s] for s in steps], axis=1)
    v = fields.valid
    return float(np.sqrt(np.nanmean((fc[:, :, :, v] - truth[:, :, :, v]) ** 2)))


def _ar1_cells(nt=1500, seed=0):
    """Each cell an AR(1) anomaly with its own coefficient (0.2 in the west to 0.95 in the
    east) around a zero climatology."""
    f = make_fields(nt=nt, nv=1, masked=False, seed=seed)
    rng = np.random.default_rng(seed)
    phi = np.linspace(0.2, 0.95, f.data.shape[3])[None, :]
    x = np.zeros((nt, *f.data.shape[2:]))
    for i in range(1, nt):
        x[i] = phi * x[i - 1] + rng.standard_normal(x.shape[1:])
    f.data[:] = x[:, None].astype(np.float32)
    return f, phi


def test_cell_linear_recovers_each_cells_own_persistence():
    f, phi = _ar1_cells()
    clim = np.zeros_like(f.data)
    tr, te = np.arange(1, 1000), np.arange(1001, 1490)
    cell = fit_cell_linear(f, clim, tr, [1])
    a = cell.coef[0, 0, :, 0].reshape(f.data.shape[2:])  # coefficient on the anomaly at t
    assert np.allclose(a, np.broadcast_to(phi, a.shape), atol=0.12)
    pooled = fit_linear(f, clim, tr, [1])
    assert _rmse(cell.predict(f, clim, te), f, te, [1]) < 0.97 * _rmse(
        pooled.predict(f, clim, te), f, te, [1]
    )


def test_ridge_learns_advection_that_local_regressions_cannot():
    """A pattern moving one cell east per step: the value at a cell comes from its western
    neighbour, which only the spatial regression sees."""
    f = make_fields(nt=900, nv=1, masked=True, seed=1)
    rng = np.random.default_rng(1)
    x = np.zeros(f.data.shape[2:])
    out = []
    for _ in range(len(f.data)):
        x = np.roll(x, 1, axis=1) * 0.9 + 0.4 * rng.standard_normal(x.shape)
        out.append(x.copy())
    f.data[:] = np.asarray(out)[:, None].astype(np.float32)
    f.data[:, :, ~f.valid] = np.nan
    clim = np.zeros_like(f.data)
    tr, va, te = np.arange(1, 600), np.arange(601, 700), np.arange(701, 890)
    steps = [1, 2]
    ridge = fit_ridge(f, clim, tr, va, steps)
    cell = fit_cell_linear(f, clim, tr, steps)
    r_ridge = _rmse(ridge.predict(f, clim, te), f, te, steps)
    r_cell = _rmse(cell.predict(f, clim, te), f, te, steps)
    assert r_ridge < 0.8 * r_cell, (r_ridge, r_cell)
    fc = ridge.predict(f, clim, te)
    assert np.isnan(fc[:, :, :, ~f.valid]).all() and np.isfinite(fc[:, :, :, f.valid]).all()
    assert len(ridge.alpha) == 2


@pytest.mark.parametrize("fit", ["cell", "ridge"])
def test_regressions_forecast_climatology_plus_anomaly(fit):
    """With no anomaly skill at all (white noise), both fall back to the climatology."""
    f = make_fields(nt=800, nv=2, masked=False, seed=2)
    rng = np.random.default_rng(2)
    clim = np.full_like(f.data, 280.0)
    f.data[:] = 280.0 + rng.standard_normal(f.data.shape).astype(np.float32)
    tr, va, te = np.arange(1, 500), np.arange(501, 600), np.arange(601, 790)
    model = fit_cell_linear(f, clim, tr, [1]) if fit == "cell" else fit_ridge(f, clim, tr, va, [1])
    fc = model.predict(f, clim, te)
    assert np.abs(fc - 280.0).mean() < 0.15  # shrunk to the climatology
