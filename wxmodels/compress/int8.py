"""int8 post-training quantization in onnxruntime: static QDQ, per-channel weights, activations
calibrated on samples from the training window of the store."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from wxmodels.compress.common import CompressContext
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import Int8Config
from wxmodels.export.lean import LEAN_TAG

__all__ = ["Int8Config", "apply"]


class _Reader(CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


WEIGHT_OPS = ("Conv", "MatMul", "Gemm")


def _weight_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes that apply a weight (a conv, or a linear layer's MatMul/Gemm whose second input
    is an initializer), in topological order; attention's products of activations are not."""
    inits = {i.name for i in graph.initializer}
    return [
        n
        for n in graph.node
        if n.op_type in WEIGHT_OPS and (n.op_type == "Conv" or n.input[1] in inits)
    ]


def _edge_convs(path: Path, which: list[str]) -> list[str]:
    """Names of the first and/or last weight layers of the graph (topological order): the
    first conv or patch embedding, the last conv or patch recovery.

    In a lean graph (:mod:`wxmodels.export.lean`) the layers that take the raw fields (their
    names carry ``LEAN_TAG``) are always left in float: one tensor holds physical values of
    very different ranges (kelvin beside kg/kg), which one int8 scale cannot represent. They
    are the graph's first layers."""
    weights = _weight_nodes(onnx.load(str(path)).graph)
    raw = [n.name for n in weights if f"/{LEAN_TAG}" in n.name]
    nodes = [n.name for n in weights if f"/{LEAN_TAG}" not in n.name]
    out = list(raw)
    if nodes and "first" in which and not raw:
        out.append(nodes[0])
    if nodes and "last" in which:
        out.append(nodes[-1])
    return out


def _module_of(node: onnx.NodeProto) -> str:
    # the exporter names a node after its module: /core/enc.0/conv1/conv/Conv is the module
    # core.enc.0.conv1.conv, /core/blocks.0/attn/qkv/MatMul the module core.blocks.0.attn.qkv
    return node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")


def learned_ranges(
    path: Path, ranges: dict[str, tuple[float, float]] | None
) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` that give each conv or linear input the range a ``qat`` step
    learned."""
    if not ranges:
        return {}
    convs = {_module_of(n): n for n in _weight_nodes(onnx.load(str(path)).graph)}
    # a layer the lean form folded into one on the raw fields (kept in float) has no range
    ranges = {
        f: r for f, r in ranges.items() if f"{f.rsplit('.', 1)[0]}.{LEAN_TAG}conv" not in convs
    }
    missing = sorted(set(ranges) - set(convs))
    if missing:
        raise ValueError(f"int8: learned ranges name layers the graph lacks: {missing[:5]}")
    return {
        convs[fqn].input[0]: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}]
        for fqn, (lo, hi) in ranges.items()
    }


def apply(
    src: str | Path, dst: str | Path, config: Int8Config, *, ctx: CompressContext, history: int
) -> Path:
    """Quantize the fp32 ONNX model ``src`` into ``dst`` (activation ranges from a preceding
    ``qat`` step where there was one, else calibrated)."""
    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        exclude = _edge_convs(pre, list(config.fp32_layers))
        overrides = learned_ranges(pre, ctx.act_ranges)
        quantize_static(
            str(pre),
            str(dst),
            _Reader(ctx.calibration(config.calibration_samples, history)),
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(config.op_types),
            calibrate_method=_METHODS[config.calibrate_method],
            nodes_to_exclude=exclude,
            extra_options={"TensorQuantOverrides": overrides} if overrides else {},
        )
    return dst


register_method(Method("int8", Int8Config, "onnx", apply))
