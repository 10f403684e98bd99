"""int8 dynamic quantization in onnxruntime: weights stored as int8, activations quantized on
the fly per call from their own range (no calibration data). Made for MatMul/Gemm (linear
layers, attention); on convs it yields ``ConvInteger``, which is smaller but often not faster
on CPU than fp32 — the matrix measures which."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from wxmodels.compress.common import CompressContext
from wxmodels.compress.int8 import _edge_convs
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import DynamicConfig

__all__ = ["DynamicConfig", "apply"]


def apply(
    src: str | Path, dst: str | Path, config: DynamicConfig, *, ctx: CompressContext, history: int
) -> Path:
    """Quantize the fp32 ONNX model ``src`` into ``dst``; refuses a graph with nothing to do."""
    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre)).graph
        exclude = _edge_convs(pre, list(config.fp32_layers))
        todo = [
            n.name for n in graph.node if n.op_type in config.op_types and n.name not in exclude
        ]
        if not todo:
            raise ValueError(
                f"dynamic: the graph has no {'/'.join(config.op_types)} node to quantize "
                "(outside the fp32 layers)"
            )
        quantize_dynamic(
            str(pre),
            str(dst),
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(config.op_types),
            nodes_to_exclude=exclude,
        )
    return dst


register_method(Method("dynamic", DynamicConfig, "onnx", apply))
