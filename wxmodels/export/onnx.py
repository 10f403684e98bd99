"""torch -> ONNX -> onnxruntime, and honest measurements of what comes out."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wxmodels.data.stats import Climatology
from wxmodels.export.io import ModelIO, stamp_io
from wxmodels.export.runtime import OUTPUT, OrtForecaster, ort_session
from wxmodels.nets.forecaster import Forecaster

__all__ = [
    "OrtForecaster",
    "export_onnx",
    "measure_latency",
    "onnx_parity",
    "ort_session",
    "torch_feeds",
]

log = logging.getLogger(__name__)


def _names(model: nn.Module) -> list[str]:
    return ["state", "time", "clim"] if getattr(model, "climatology", False) else ["state", "time"]


def export_onnx(
    model: Forecaster,
    path: str | Path,
    *,
    opset: int = 17,
    dynamo: bool = False,
    lean: bool = True,
) -> Path:
    """Export a forecaster with a dynamic batch dimension.

    ``lean`` (the default) exports its lean form (:mod:`wxmodels.export.lean`: input assembly,
    statics, normalisation and output folded into a few layers) where the core allows it; the
    same function wherever the inputs are finite at the valid cells.

    The TorchScript-based exporter (``dynamo=False``, opset 17) is the default: it is ~15x faster
    to run here and matches torch to ~2e-7 like the dynamo exporter (``dynamo=True``, opset 20).
    """
    from wxmodels.export.lean import lean_forecaster

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    spec = model.spec
    folded = lean_forecaster(model) if lean else None
    if folded is not None:
        model = folded  # type: ignore[assignment]
    hist, nv = model.history, len(model.spec.variables)
    h, w = model.spec.grid
    args = [torch.zeros(1, hist, nv, h, w), torch.full((1,), 4.7e5)]
    if model.climatology:
        args.append(torch.zeros(1, hist + 1, nv, h, w))
    names = _names(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                model,
                tuple(args),
                str(path),
                input_names=names,
                output_names=[OUTPUT],
                dynamo=True,
                opset_version=max(opset, 18),
                dynamic_shapes={n: {0: batch} for n in names},
            )
        else:
            torch.onnx.export(
                model,
                tuple(args),
                str(path),
                input_names=names,
                output_names=[OUTPUT],
                opset_version=opset,
                dynamo=False,
                # the lean form's constants are computed from the layers' own weights when
                # onnxruntime loads the model, so the file keeps those weights as they are
                # (clustered weights stay on their codebook and pack small)
                do_constant_folding=folded is None,
                dynamic_axes={k: {0: "batch"} for k in (*names, OUTPUT)},
            )
    return stamp_io(path, ModelIO.from_spec(spec))


def torch_feeds(model: Forecaster, feeds: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(feeds[n]) for n in _names(model))


def onnx_parity(
    model: Forecaster,
    path: str | Path,
    state: np.ndarray,
    time_h: np.ndarray,
    climatology: Climatology | None = None,
) -> float:
    """Largest |onnx - torch| over valid points, in units of each variable's std."""
    runner = OrtForecaster(path, climatology=climatology, step_hours=model.spec.step_hours)
    feeds = runner.feeds(state, time_h)
    with torch.no_grad():
        ref = model.eval().cpu()(*torch_feeds(model, feeds)).numpy()
    got = runner.session.run([OUTPUT], feeds)[0]
    std = np.asarray(model.spec.std, np.float32).reshape(1, -1, 1, 1)
    diff = np.abs(got - ref) / std
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")


def measure_latency(
    path: str | Path,
    state: np.ndarray,
    time_h: np.ndarray,
    *,
    batch: int = 1,
    threads: int = 1,
    repeats: int = 50,
    warmup: int = 5,
) -> float:
    """Median wall time (ms) of one ``session.run`` at ``batch`` (inputs prepared beforehand:
    the climatology, when the model takes it, is part of the data, not of the timing)."""
    runner = OrtForecaster(path, threads=threads)
    reps = int(np.ceil(batch / len(state)))
    feeds = runner.feeds(
        np.concatenate([state] * reps)[:batch], np.concatenate([time_h] * reps)[:batch]
    )
    for _ in range(warmup):
        runner.session.run([OUTPUT], feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner.session.run([OUTPUT], feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)
