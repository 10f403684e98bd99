"""onnxruntime sessions and the one-step forecaster on numpy arrays: what running a model
needs, and nothing more (no torch, no xarray), so that a deployer's process stays small."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from wxmodels.export.io import ModelIO, onnx_io

if TYPE_CHECKING:
    from wxmodels.data.stats import Climatology

__all__ = ["OUTPUT", "OrtForecaster", "ort_session"]

OUTPUT = "next"


def ort_session(path: str | Path, *, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with a fixed number of intra-op threads (so that timings compare);
    ``path`` is an ``.onnx`` file or a ``.wxpack`` (unpacked and checked in memory)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if Path(path).suffix == ".wxpack":
        from wxmodels.export.packing import unpack_onnx

        return ort.InferenceSession(unpack_onnx(path), so, providers=["CPUExecutionProvider"])
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OrtForecaster:
    """A one-step forecaster backed by onnxruntime: ``(state, time) -> next`` on numpy arrays.

    The channel order of ``state`` and ``next`` is :attr:`variables`, read from the model's
    own I/O description (its ONNX metadata; ``model.json`` beside it for older files).
    Models that take the climatology as input get it from ``climatology`` (the
    ``climatology.nc`` shipped beside ``model.onnx``, found automatically when not given),
    taken in the model's channel order.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int = 1,
        climatology: Climatology | None = None,
        step_hours: float | None = None,
    ):
        self.path = Path(path)
        self.session = ort_session(path, threads=threads)
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.history = int(inputs["state"].shape[1])
        self.needs_clim = "clim" in inputs
        self.io = onnx_io(self.session.get_modelmeta().custom_metadata_map) or self._spec_io()
        self.variables = list(self.io.variables) if self.io else None
        if self.needs_clim and climatology is None:
            side = self.path.with_name("climatology.nc")
            if not side.exists():
                raise FileNotFoundError(
                    f"{self.path} takes a climatology input but there is no {side.name} beside it"
                )
            from wxmodels.data.stats import Climatology

            climatology = Climatology.from_netcdf(side)
        if climatology is not None and self.variables and climatology.variables != self.variables:
            climatology = climatology.select(self.variables)
        self.climatology = climatology
        if step_hours is None and self.io is not None:
            step_hours = self.io.step_hours
        if self.needs_clim and step_hours is None:
            raise ValueError(f"{self.path}: the model's time step is unknown (no model.json)")
        self.step_hours = step_hours

    def _spec_io(self) -> ModelIO | None:
        """For ONNX files written before they carried their I/O description."""
        import json

        for spec in (self.path.with_name("model.json"), self.path.parent / "torch" / "model.json"):
            if spec.exists():
                return ModelIO.from_spec(json.loads(spec.read_text()))
        return None

    def feeds(self, state: np.ndarray, time_h: np.ndarray) -> dict[str, np.ndarray]:
        f = {
            "state": np.ascontiguousarray(state, np.float32),
            "time": np.ascontiguousarray(time_h, np.float32),
        }
        if self.needs_clim:
            if self.climatology is None or self.step_hours is None:
                raise ValueError(f"{self.path}: the model takes a climatology it was not given")
            f["clim"] = self.climatology.window(time_h, self.history, self.step_hours)
        return f

    def __call__(self, state: np.ndarray, time_h: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT], self.feeds(state, time_h))[0]
