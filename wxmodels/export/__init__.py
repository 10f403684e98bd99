"""ONNX export, parity checks, onnxruntime sessions and latency measurement."""

from wxmodels.export.onnx import (
    OrtForecaster,
    export_onnx,
    measure_latency,
    onnx_parity,
    ort_session,
)

__all__ = ["OrtForecaster", "export_onnx", "measure_latency", "onnx_parity", "ort_session"]
