"""Quantization-aware fine-tuning exported as QDQ, and dynamic quantization."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from wxmodels.compress import CellConfig, get_method
from wxmodels.compress.dynamic import DynamicConfig
from wxmodels.compress.int8 import Int8Config
from wxmodels.compress.qat import QatConfig, fake_quant_weight
from wxmodels.export.onnx import OrtForecaster, export_onnx


def _inits(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


# per family: a layer inside the core, its ONNX op, and its node's name
LAYER = {
    "unet": ("core.enc.0.conv2.conv", "Conv", "enc.0/conv2/"),
    "transformer": ("core.blocks.0.mlp.fc1", "MatMul", "blocks.0/mlp/fc1/"),
}


def test_qat_exports_qdq_with_the_learned_ranges_and_integers(
    teacher, ctx, probe, tmp_path, family
):
    fqn, op, node_name = LAYER[family]
    cfg = QatConfig(finetune_epochs=2)
    assert QatConfig.model_validate_json(cfg.model_dump_json()) == cfg
    model = get_method(cfg).apply(copy.deepcopy(teacher), cfg, ctx=ctx).eval()
    head = "core.head.conv" if family == "unet" else "core.head"
    assert set(ctx.act_ranges) >= {fqn, head}
    assert not any("parametrizations" in n for n, _ in model.named_parameters())
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    q = get_method("int8").apply(
        fp32, tmp_path / "q.onnx", Int8Config(calibration_samples=4), ctx=ctx, history=2
    )
    graph = onnx.load(str(q)).graph
    inits = _inits(q)
    # the layer's input is quantized over the range qat learned, not a calibrated one
    node = next(n for n in graph.node if n.op_type == op and node_name in n.name)
    dq_in = next(n for n in graph.node if n.output[0] == node.input[0])
    lo, hi = ctx.act_ranges[fqn]
    assert float(inits[dq_in.input[1]]) == pytest.approx((hi - lo) / 255, rel=1e-5)
    # the int8 weights are the integers qat trained through: dequantized == fake-quantized
    dq_w = next(n for n in graph.node if n.output[0] == node.input[1])
    w_int = inits[dq_w.input[0]].astype(np.float32)
    w_scale = inits[dq_w.input[1]].astype(np.float32)
    w = model.get_submodule(fqn).weight.detach()
    # a linear layer's MatMul takes the transposed weight (in, out): its scales are per column
    conv = family == "unet"
    got = w_int * w_scale[:, None, None, None] if conv else (w_int * w_scale[None, :]).T
    np.testing.assert_allclose(got, fake_quant_weight(w).numpy(), rtol=1e-5, atol=1e-7)
    state, tm = probe
    out = OrtForecaster(q)(state, tm)
    with torch.no_grad():
        ref = model(torch.from_numpy(state), torch.from_numpy(tm)).numpy()
    valid = ctx.fields.valid
    assert np.isfinite(out[:, :, valid]).all()
    assert np.abs(out - ref)[:, :, valid].max() < 0.5


def test_qat_must_end_in_int8():
    with pytest.raises(ValueError, match="end the cell with int8"):
        CellConfig(name="q", steps=[{"method": "qat"}])
    with pytest.raises(ValueError, match="qat must be the last torch step"):
        CellConfig(name="q", steps=[{"method": "qat"}, {"method": "prune"}, {"method": "int8"}])
    CellConfig(name="q", steps=[{"method": "distill"}, {"method": "qat"}, {"method": "int8"}])


def test_dynamic_quantizes_without_calibration(teacher, ctx, probe, tmp_path, family):
    cfg = DynamicConfig()
    assert DynamicConfig.model_validate_json(cfg.model_dump_json()) == cfg
    fp32 = export_onnx(teacher, tmp_path / "fp32.onnx")
    q = get_method(cfg).apply(fp32, tmp_path / "dyn.onnx", cfg, ctx=ctx, history=2)
    graph = onnx.load(str(q)).graph
    ops = [n.op_type for n in graph.node]
    assert "DynamicQuantizeLinear" in ops
    if family == "unet":
        assert "ConvInteger" in ops
        # the layers on the raw fields (the lean graph's folded first conv and its pointwise
        # output path) and the last stay fp32; every other conv is quantized
        kept = [n.name for n in graph.node if n.op_type == "Conv"]
        assert len(kept) == 3, kept
        assert sum("/lean_" in k for k in kept) == 2 and any("/head/" in k for k in kept)
    else:  # every linear layer but the patch embedding and recovery runs as MatMulInteger
        assert ops.count("MatMulInteger") == 4 * 4  # qkv, proj, fc1, fc2 of 4 blocks
        kept = [n.name for n in graph.node if n.op_type == "MatMul" and "Integer" not in n.name]
        assert any("embed_proj" in k for k in kept) and any("/head/" in k for k in kept)
    assert q.stat().st_size < fp32.stat().st_size
    state, tm = probe
    out, ref = OrtForecaster(q)(state, tm), OrtForecaster(fp32)(state, tm)
    valid = ctx.fields.valid
    assert np.abs(out - ref)[:, :, valid].max() < 0.5


def test_dynamic_refuses_a_graph_without_its_op_types(teacher, ctx, tmp_path, family):
    fp32 = export_onnx(teacher, tmp_path / "fp32.onnx")
    absent = ["MatMul", "Gemm"] if family == "unet" else ["Conv"]  # a transformer has no conv
    with pytest.raises(ValueError, match=f"no {'/'.join(absent)} node"):
        get_method("dynamic").apply(
            fp32, tmp_path / "d.onnx", DynamicConfig(op_types=absent), ctx=ctx, history=2
        )
