"""The lean inference graph: the same function as the forecaster (torch and ONNX), fewer nodes,
no ``Pad`` for zero-padded models, float layers on the raw fields, and what it refuses."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch

from tests.factories import make_fields, net_spec
from wxmodels.export.lean import LeanForecaster, lean_forecaster
from wxmodels.export.onnx import export_onnx
from wxmodels.export.runtime import OrtForecaster
from wxmodels.nets import Forecaster
from wxmodels.nets.forecaster import ensemble

H, W = 7, 10  # odd sizes: the U-Net pads its input
# float32 on raw fields (280 K): one ulp is 1e-5 of a 3 K std; the cycle gates parity at 1e-3
TOL = 1e-4


def _spec(f, climatology=True, **net):
    spec = net_spec(f, **{"width": 6, "depth": 2, "linear_skip": True, **net})
    spec.mean, spec.std, spec.tendency_std = [280.0, 5.0], [3.0, 1.0], [0.9, 0.3]
    if climatology:
        spec.climatology, spec.anomaly_std, spec.damping = True, [2.0, 0.7], [0.9, 0.6]
    return spec


def _model(f, *, seed=0, statics=None, **kw) -> Forecaster:
    torch.manual_seed(seed)
    spec = _spec(f, **kw)
    if statics is not None:
        spec.statics = ["orography"]
    m = Forecaster(spec, valid=f.valid, statics=statics).eval()
    with torch.no_grad():  # a trained model's linear path and damping are not at their start
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def _inputs(f, m, batch=3, garbage=np.nan):
    """Physical states and climatologies, ``garbage`` at the masked cells."""
    rng = np.random.default_rng(1)
    mean = np.array(m.spec.mean, np.float32).reshape(1, 1, -1, 1, 1)
    std = np.array(m.spec.std, np.float32).reshape(1, 1, -1, 1, 1)
    state = (mean + std * rng.normal(size=(batch, 2, 2, H, W))).astype(np.float32)
    clim = (mean + 0.5 * std * rng.normal(size=(batch, 3, 2, H, W))).astype(np.float32)
    state[..., ~f.valid] = garbage
    clim[..., ~f.valid] = garbage
    tm = np.array([438_000.0, 438_007.0, 450_013.0][:batch], np.float32)
    return state, tm, clim


def _max_diff(f, m, a, b):
    std = torch.tensor(m.spec.std).view(1, -1, 1, 1)
    valid = torch.from_numpy(f.valid)
    assert torch.isnan(b[:, :, ~valid]).all() and torch.isfinite(b[:, :, valid]).all()
    return float(((a - b).abs() / std)[:, :, valid].max())


CASES = {
    "unet": {},
    "unet-zero-padding": {"padding": "zeros"},
    "resnet": {"arch": "resnet"},
    "no-climatology": {"climatology": False},
    "no-time-features": {"time_features": False},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("garbage", [np.nan, 1e4])
def test_lean_is_the_same_function_in_torch(case, garbage):
    f = make_fields(nlat=H, nlon=W)
    m = _model(f, **CASES[case])
    lean = lean_forecaster(m)
    assert isinstance(lean, LeanForecaster)
    state, tm, clim = _inputs(f, m, garbage=garbage)
    args = [torch.from_numpy(state), torch.from_numpy(tm)]
    if m.climatology:
        args.append(torch.from_numpy(clim))
    with torch.no_grad():
        d = _max_diff(f, m, m(*args), lean(*args))
    assert d < TOL, d


def test_lean_folds_statics_low_rank_layers_and_ensembles():
    f = make_fields(nlat=H, nlon=W)
    oro = np.random.default_rng(3).normal(size=(1, H, W)).astype(np.float32) * 300
    spec_lr = _spec(f)
    spec_lr.overrides = {"enc.0.conv1": {"rank": 3}, "head": {"rank": 2}}
    low = Forecaster(spec_lr, valid=f.valid).eval()
    for m in (_model(f, statics=oro), low, ensemble([_model(f, seed=1), _model(f, seed=2)])):
        lean = lean_forecaster(m)
        assert lean is not None
        state, tm, clim = _inputs(f, m)
        args = [torch.from_numpy(x) for x in (state, tm, clim)]
        with torch.no_grad():
            d = _max_diff(f, m, m(*args), lean(*args))
        assert d < TOL, d


def test_cores_it_cannot_fold_are_exported_as_they_are(tmp_path):
    f = make_fields(nlat=8, nlon=12)
    spec = _spec(f, arch="transformer", width=8, depth=1)
    spec.net.update(width=8, depth=1, heads=2, patch=2)
    m = Forecaster(spec, valid=f.valid).eval()
    assert lean_forecaster(m) is None
    a = export_onnx(m, tmp_path / "a.onnx")
    b = export_onnx(m, tmp_path / "b.onnx", lean=False)
    assert a.read_bytes() == b.read_bytes()


def _optimised_ops(path, tmp_path) -> list[str]:
    """The graph onnxruntime runs (portable optimisation level, so the count is the same on
    every CPU): the lean form's constants are evaluated there, at load."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / f"opt-{path.name}")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


def test_onnx_lean_graph_matches_torch_with_fewer_nodes_and_no_pad_for_zero_padding(tmp_path):
    f = make_fields(nlat=H, nlon=W)
    for name, kw in (("reflect", {}), ("zeros", {"padding": "zeros"})):
        m = _model(f, **kw)
        full = export_onnx(m, tmp_path / f"{name}-full.onnx", lean=False)
        lean = export_onnx(m, tmp_path / f"{name}-lean.onnx")
        n_full = len(_optimised_ops(full, tmp_path))
        ops = _optimised_ops(lean, tmp_path)
        assert len(ops) < 0.6 * n_full, (len(ops), n_full)
        # zero padding is the convs' own: only the U-Net's input padding (odd grid) is left
        assert ops.count("Pad") == (1 if name == "zeros" else 11), ops
        # the file keeps the layers' own weights (a clustered model stays on its codebook)
        weights = [onnx.numpy_helper.to_array(i) for i in onnx.load(str(lean)).graph.initializer]
        first = m.core.enc[0].conv1.conv.weight.detach().numpy()
        assert any(x.shape == first.shape and np.array_equal(x, first) for x in weights)
        state, tm, clim = _inputs(f, m)

        class Clim:  # the climatology input as the runtime would assemble it
            variables = m.spec.variables

            def __init__(self, window: np.ndarray):
                self._window = window

            def window(self, t, history, step):
                return self._window[: len(t)]

        for path in (full, lean):
            runner = OrtForecaster(path, climatology=Clim(clim), step_hours=1.0)  # type: ignore[arg-type]
            got = torch.from_numpy(runner(state, tm))
            with torch.no_grad():
                want = m(*(torch.from_numpy(x) for x in (state, tm, clim)))
            d = _max_diff(f, m, want, got)
            assert d < TOL, (path.name, d)


def test_lean_refuses_a_missing_climatology():
    f = make_fields(nlat=H, nlon=W)
    lean = lean_forecaster(_model(f))
    assert lean is not None
    with pytest.raises(ValueError, match="climatology"):
        lean(torch.zeros(1, 2, 2, H, W), torch.zeros(1))


def test_a_missing_value_at_a_valid_cell_is_not_silently_filled():
    """The contract: inputs finite at the valid cells. The lean graph does not invent a value
    for a missing one (the forecast turns NaN around it); the edge runtime refuses such input
    before running (tested with the pulled model in the bare environment)."""
    f = make_fields(nlat=H, nlon=W)
    m = _model(f)
    lean = lean_forecaster(m)
    assert lean is not None
    state, tm, clim = _inputs(f, m)
    state[0, -1, 0, 4, 5] = np.nan
    with torch.no_grad():
        out = lean(*(torch.from_numpy(x) for x in (state, tm, clim)))
    assert torch.isnan(out[0, :, 4, 5]).all()
    assert torch.isfinite(out[1:][:, :, torch.from_numpy(f.valid)]).all()


def test_spec_fields_survive_for_the_exporter():
    f = make_fields(nlat=H, nlon=W)
    m = _model(f)
    lean = lean_forecaster(m)
    assert lean is not None
    assert lean.spec == m.spec and lean.history == m.history and lean.climatology
    assert dataclasses.asdict(lean.spec) == dataclasses.asdict(m.spec)


def test_a_grid_without_invalid_cells_needs_no_mask(tmp_path):
    f = make_fields(nlat=H, nlon=W, masked=False)
    m = _model(f)
    lean = lean_forecaster(m)
    assert lean is not None and not lean.masked
    state, tm, clim = _inputs(f, m)
    with torch.no_grad():
        d = _max_diff(f, m, m(*(torch.from_numpy(x) for x in (state, tm, clim))),
                      lean(*(torch.from_numpy(x) for x in (state, tm, clim))))  # fmt: skip
    assert d < TOL, d
    ops = _optimised_ops(export_onnx(m, tmp_path / "m.onnx"), tmp_path)
    assert "Where" not in ops and "IsNaN" not in ops
