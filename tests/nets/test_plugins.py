"""Bring your own core: an out-of-tree package (``tests/nets/plugin``: a distribution whose
metadata registers ``mixer`` in the ``wxcompress.cores`` entry-point group, found on the path
the way an installed package is) is trained, compressed, exported and reloaded through the
project's own code, and the registry's manifest says where the core came from."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.factories import make_fields
from wxmodels.compress import get_method
from wxmodels.compress.common import CompressContext
from wxmodels.config.methods import (
    ClusterConfig,
    DepthConfig,
    DistillConfig,
    Int8Config,
    LowRankConfig,
    PruneConfig,
    StructuredConfig,
)
from wxmodels.config.model import NetConfig, TrainConfig
from wxmodels.data.fields import Split, compute_stats
from wxmodels.export.onnx import OrtForecaster, export_onnx, onnx_parity
from wxmodels.nets import Forecaster, ForecasterSpec, load_forecaster, save_forecaster
from wxmodels.nets.layers import LowRankConv2d, LowRankLinear
from wxmodels.nets.plugins import core_source
from wxmodels.pipeline.promote import architecture
from wxmodels.registry.card import model_card

PLUGIN = Path(__file__).parent / "plugin"


@pytest.fixture(autouse=True)
def installed(monkeypatch):
    """The plug-in's distribution on ``sys.path``: importlib.metadata finds its entry point."""
    monkeypatch.syspath_prepend(str(PLUGIN))


@pytest.fixture(scope="module")
def fields():
    return make_fields(nt=120, nlat=6, nlon=8)


def _model(fields, arch="mixer", options=None):
    torch.manual_seed(0)
    net = NetConfig(arch=arch, width=8, depth=2, history=2, options=options or {})
    spec = ForecasterSpec(
        net=net.model_dump(),
        variables=fields.variables,
        lat=fields.lat.tolist(),
        lon=fields.lon.tolist(),
        step_hours=1.0,
        **compute_stats(fields, (0, 80)),
    )
    return Forecaster(spec, valid=fields.valid).eval()


@pytest.fixture
def ctx(fields):
    return CompressContext(
        teacher=None,  # type: ignore[arg-type]
        fields=fields,
        split=Split(train=(0, 80), val=(85, 100), test=(105, 120)),
        train=TrainConfig(batch_size=8, samples_per_epoch=32, lr=1e-3),
        seed=1,
        max_minutes=0.5,
    )


def _probe(fields):
    idx = np.array([10, 30])
    state = np.stack([fields.data[i - 1 : i + 1] for i in idx]).astype(np.float32)
    return state, fields.hours[idx].astype(np.float32)


def test_the_entry_point_is_a_valid_arch_and_unknown_names_are_refused():
    assert NetConfig(arch="mixer").arch == "mixer"
    src = core_source("mixer")
    assert (src.family, src.plugin) == ("plugin", "wxc_example_core:build")
    assert (src.distribution, src.version) == ("wxc-example-core", "0.3.1")
    with pytest.raises(ValueError, match=r"neither a built-in core.*mixer"):
        NetConfig(arch="mixr")
    with pytest.raises(ValueError, match="at most 4 down-samplings"):
        NetConfig(arch="unet", depth=6)
    with pytest.raises(ValueError, match="multiple of heads"):
        NetConfig(arch="transformer", width=30, heads=4)


def test_plugin_core_forecasts_exports_and_reloads(fields, tmp_path):
    model = _model(fields, options={"kernel": 5})
    assert model.core.stem.kernel_size == (5, 5)  # the options reach the factory
    state, tm = _probe(fields)
    with torch.no_grad():
        out = model(torch.from_numpy(state), torch.from_numpy(tm))
    assert out.shape == (2, len(fields.variables), 6, 8)
    assert torch.isnan(out[:, :, ~torch.from_numpy(fields.valid)]).all()
    path = export_onnx(model, tmp_path / "m.onnx")
    assert onnx_parity(model, path, state, tm) < 1e-4
    save_forecaster(model, tmp_path / "ckpt")
    again = load_forecaster(tmp_path / "ckpt")
    torch.testing.assert_close(again.state_dict(), model.state_dict(), equal_nan=True)


def test_module_factory_form_names_the_same_core(fields):
    model = _model(fields, arch="wxc_example_core:build")
    assert type(model.core).__name__ == "MixerCore"
    assert core_source("wxc_example_core:build").version == "0.3.1"
    with pytest.raises(ValueError, match="cannot be loaded"):
        _model(fields, arch="wxc_example_core:nothing_here")


@pytest.mark.parametrize(
    "config",
    [
        PruneConfig(amount=0.5, steps=1, finetune_epochs=1),
        LowRankConfig(ratio=0.25, finetune_epochs=1),
        ClusterConfig(bits=3, finetune_epochs=1),
        DistillConfig(arch="transformer", width=8, depth=1, heads=2, epochs=1),
    ],
    ids=lambda c: c.method,
)
def test_torch_methods_compress_a_plugin_core(fields, ctx, config, tmp_path):
    teacher = _model(fields)
    ctx.teacher = teacher
    model = get_method(config).apply(copy.deepcopy(teacher), config, ctx=ctx).eval()
    state, tm = _probe(fields)
    path = export_onnx(model, tmp_path / "m.onnx")
    assert onnx_parity(model, path, state, tm) < 1e-4
    # a factorised plug-in core is rebuilt from its spec: the overrides are re-applied after
    # the plug-in's factory builds it
    save_forecaster(model, tmp_path / "ckpt")
    again = load_forecaster(tmp_path / "ckpt")
    with torch.no_grad():
        torch.testing.assert_close(
            again(torch.from_numpy(state), torch.from_numpy(tm)),
            model(torch.from_numpy(state), torch.from_numpy(tm)),
            equal_nan=True,
        )
    if config.method == "lowrank":
        low = [m for m in again.core.modules() if isinstance(m, LowRankConv2d | LowRankLinear)]
        assert low and set(again.spec.overrides) == {
            f for f, o in model.spec.overrides.items() if "rank" in o
        }
        assert again.core.stem.first.padding == (1, 1)  # the plug-in's conv padding kept


def test_int8_quantizes_a_plugin_core(fields, ctx, tmp_path):
    teacher = _model(fields)
    ctx.teacher = teacher
    fp32 = export_onnx(teacher, tmp_path / "fp32.onnx")
    cfg = Int8Config(calibration_samples=8)
    q = get_method(cfg).apply(fp32, tmp_path / "q.onnx", cfg, ctx=ctx, history=2)
    state, tm = _probe(fields)
    out, ref = OrtForecaster(q)(state, tm), OrtForecaster(fp32)(state, tm)
    assert np.isfinite(out[:, :, fields.valid]).all()
    assert np.abs(out - ref)[:, :, fields.valid].max() / 3.0 < 0.5


def test_what_a_plugin_core_cannot_take_is_refused_in_one_line(fields, ctx):
    teacher = _model(fields)
    ctx.teacher = teacher
    with pytest.raises(ValueError, match="no conv block, attention layer or MLP"):
        get_method("structured").apply(
            copy.deepcopy(teacher), StructuredConfig(finetune_epochs=0), ctx=ctx
        )
    with pytest.raises(ValueError, match="not a stack of blocks"):
        get_method("depth").apply(copy.deepcopy(teacher), DepthConfig(depth=1), ctx=ctx)


def test_the_manifest_and_card_say_where_the_core_came_from(fields):
    arch = architecture(_model(fields).spec.net)
    assert arch["arch"] == "mixer" and arch["family"] == "plugin"
    assert arch["distribution"] == "wxc-example-core" and arch["version"] == "0.3.1"
    scores = {"teacher": {m: {"t2m": {"1": 1.0}} for m in ("rmse", "acc")}}
    card = model_card({"architecture": arch, "name": "x", "kind": "teacher"}, scores, "teacher")
    assert "plug-in `wxc_example_core:build` from wxc-example-core 0.3.1" in card
    tr = architecture(NetConfig(arch="transformer", width=32, heads=4).model_dump())
    assert tr["family"] == "transformer" and tr["heads"] == 4
