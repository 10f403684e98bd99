"""ONNX export, parity checks, onnxruntime sessions and latency measurement.

The names are loaded on first use: :mod:`wxmodels.export.runtime` (running a model) and
:mod:`wxmodels.export.io` need neither torch nor xarray, and importing them does not load
:mod:`wxmodels.export.onnx` (the torch side)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["OrtForecaster", "export_onnx", "measure_latency", "onnx_parity", "ort_session"]

_WHERE = {
    "OrtForecaster": "wxmodels.export.runtime",
    "ort_session": "wxmodels.export.runtime",
    "export_onnx": "wxmodels.export.onnx",
    "measure_latency": "wxmodels.export.onnx",
    "onnx_parity": "wxmodels.export.onnx",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
