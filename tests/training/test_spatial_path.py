"""The reduced-rank spatial linear path: a ridge start that sees across the grid, exact in
ONNX and in an ensemble."""

import numpy as np
import pytest
import torch

from tests.factories import make_fields, net_spec
from wxmodels.export.onnx import export_onnx, onnx_parity
from wxmodels.nets import Forecaster
from wxmodels.nets.forecaster import ensemble, member
from wxmodels.training.linear_init import init_linear_path, init_spatial_path
from wxmodels.training.loop import Batches, masked_loss


def _model(f, seed=0, **net):
    spec = net_spec(f, **{"linear_skip": True, "spatial_rank": 6, **net})
    torch.manual_seed(seed)
    return Forecaster(spec, valid=f.valid)


def _loss(model, f, inits):
    b = Batches(f, model.history, torch.device("cpu"))
    state, tm, clim, truth = b.get(inits, 1)
    with torch.no_grad():
        pred = model(state, tm, clim)[:, None]
    return float(masked_loss(pred, truth, torch.tensor([3.0, 3.0]), torch.ones(len(f.lat), 1)))


def _advected(nt=400, seed=0):
    """Random patterns carried one cell east per step: the next value at a cell is its
    western neighbour's, which no pointwise map can know."""
    f = make_fields(nt=nt, masked=False, seed=seed)
    rng = np.random.default_rng(seed)
    x = np.zeros(f.data.shape[1:])
    out = []
    for _ in range(nt):
        x = 0.95 * np.roll(x, 1, axis=-1) + 0.3 * rng.standard_normal(x.shape)
        out.append(x.copy())
    f.data[:] = (280.0 + 3.0 * np.asarray(out)).astype(np.float32)
    return f


def test_spatial_start_learns_what_the_pointwise_path_cannot():
    f = _advected()
    tr, va, te = np.arange(2, 250), np.arange(260, 320), np.arange(330, 390)
    pointwise = _model(f, spatial_rank=0)
    init_linear_path(pointwise, f, tr)
    model = _model(f, spatial_rank=192)  # a shift is a full-rank map
    init_linear_path(model, f, tr)
    rep = init_spatial_path(model, f, tr, va)
    assert rep["val_mse_spatial"] < 0.5 * rep["val_mse_pointwise"]
    assert _loss(model, f, te) < 0.5 * _loss(pointwise, f, te)  # out of sample too
    # a low rank keeps less of it, and says so
    low = _model(f, spatial_rank=4)
    init_linear_path(low, f, tr)
    rep4 = init_spatial_path(low, f, tr, va)
    assert rep4["energy_kept"] < 0.5
    assert rep["val_mse_spatial"] < rep4["val_mse_spatial"] <= rep4["val_mse_pointwise"] * 1.01


def test_no_spatial_path_is_refused():
    f = make_fields(nt=60)
    with pytest.raises(ValueError, match="spatial path"):
        init_spatial_path(_model(f, spatial_rank=0), f, np.arange(2, 30), np.arange(30, 50))


def test_too_large_a_grid_is_refused_at_construction():
    f = make_fields(nt=10, nlat=48, nlon=48)
    with pytest.raises(ValueError, match="spatial_rank needs"):
        _model(f)


def test_onnx_parity_and_an_exact_ensemble(tmp_path):
    f = _advected(nt=120)
    tr, va = np.arange(2, 80), np.arange(85, 110)
    members = []
    for k in range(2):
        m = _model(f, seed=k)
        init_linear_path(m, f, tr)
        init_spatial_path(m, f, tr, va)
        with torch.no_grad():  # make the members differ
            m.spatial.outer.weight.mul_(1.0 + 0.5 * k)
            m.spatial.outer.bias.add_(0.1 * k)
        members.append(m.eval())
    ens = ensemble(members)
    b = Batches(f, 2, torch.device("cpu"))
    state, tm, clim, _ = b.get(np.arange(90, 96), 1)
    with torch.no_grad():
        mean = torch.stack([m(state, tm, clim) for m in members]).mean(0)
        got = ens(state, tm, clim)
    torch.testing.assert_close(got, mean, rtol=1e-5, atol=1e-4, equal_nan=True)
    # member k of the ensemble keeps its own map (the bias is the members' mean)
    m1 = member(ens, 1)
    torch.testing.assert_close(
        m1.spatial.outer.weight, members[1].spatial.outer.weight, rtol=1e-6, atol=1e-6
    )
    path = export_onnx(ens, tmp_path / "m.onnx")
    idx = np.arange(90, 96)
    st = np.stack([f.data[i - 1 : i + 1] for i in idx]).astype(np.float32)
    assert onnx_parity(ens, path, st, f.hours[idx].astype(np.float32)) < 1e-4
