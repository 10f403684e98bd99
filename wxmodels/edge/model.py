"""A pulled model in one onnxruntime session, set up for forecasting one initialisation at a
time on a small device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from wxmodels.errors import DataError
from wxmodels.export.io import ModelIO
from wxmodels.export.runtime import OrtForecaster, rollout

__all__ = ["EdgeModel"]


class EdgeModel:
    """The model of a pulled directory (``model.onnx``, optimised fully for this machine at
    load; else ``model.ort``, the batch-1 form for minimal builds) in a session with
    ``threads`` intra-op threads and no spinning between calls.

    Its inputs and outputs are described by the model itself (variables in channel order,
    units, time step, history, grid) and checked against the manifest it was published with.
    """

    def __init__(self, model_dir: str | Path, *, threads: int = 1, spinning: bool = False):
        self.dir = Path(model_dir)
        mpath = self.dir / "manifest.json"
        if not mpath.exists():
            raise DataError(f"{self.dir} is not a pulled model (no manifest.json)")
        self.manifest: dict[str, Any] = json.loads(mpath.read_text())
        self.ref = f"{self.manifest.get('name')}@{self.manifest.get('version')}"
        path = self.dir / "model.onnx"
        if not path.exists():
            path = self.dir / "model.ort"
        self.path = path
        self.runner = OrtForecaster(path, threads=threads, spinning=spinning)
        io = self.runner.io
        if io is None:
            spec = self.dir / "model.json"
            if not spec.exists():
                raise DataError(f"{self.ref}: the model does not describe its inputs")
            io = ModelIO.from_spec(json.loads(spec.read_text()))
        io.check_manifest(self.manifest, self.ref)
        self.io: ModelIO = io
        grid = self.manifest["signature"]["grid"]
        self.lat = np.asarray(grid["lat"], np.float64)
        self.lon = np.asarray(grid.get("lon", []), np.float64)

    @property
    def variables(self) -> list[str]:
        return list(self.io.variables)

    @property
    def history(self) -> int:
        return self.io.history

    @property
    def step_hours(self) -> float:
        return self.io.step_hours

    def steps(self, leads_h: list[float]) -> list[int]:
        """Lead times as step counts; each must be a positive multiple of the time step."""
        bad = [x for x in leads_h if x <= 0 or x / self.step_hours != int(x / self.step_hours)]
        if bad or not leads_h:
            raise DataError(
                f"leads {bad} h are not positive multiples of the model's {self.step_hours} h step"
            )
        return sorted({int(x / self.step_hours) for x in leads_h})

    def valid_cells(self) -> np.ndarray:
        """``(H, W)`` bool: the cells the model forecasts (it returns NaN elsewhere), found by
        one call on a finite input (the mask is the model's own, in no file of its own)."""
        if getattr(self, "_valid", None) is None:
            shape = (1, self.history, len(self.variables), *self.io.shape)
            out = self.runner(np.ones(shape, np.float32), np.array([4.8e5], np.float32))
            self._valid = np.isfinite(out[0]).all(axis=0)
        return self._valid

    def check_missing(self, state: np.ndarray) -> None:
        """Refuse input with a missing (non-finite) value at a cell the model forecasts: the
        model has no way to fill it, and what it returned would be a guess."""
        bad = ~np.isfinite(state[..., self.valid_cells()])
        if bad.any():
            per_var = bad.sum(axis=(0, 1, 3))
            which = {v: int(n) for v, n in zip(self.variables, per_var, strict=True) if n}
            raise DataError(
                f"the input has missing values at cells the model forecasts (count per "
                f"variable: {which}); fill or mask them before forecasting"
            )

    def forecast(
        self, state: np.ndarray, init_hours: np.ndarray, leads_h: list[float]
    ) -> np.ndarray:
        """``state`` ``(B, history, V, H, W)`` in the model's units and channel order, the last
        state valid at ``init_hours`` ``(B,)`` (hours since 1970, UTC) -> ``(B, L, V, H, W)``
        at the sorted distinct ``leads_h``."""
        want = (self.history, len(self.variables), *self.io.shape)
        if state.ndim != 5 or tuple(state.shape[1:]) != want:
            raise DataError(f"input shape {tuple(state.shape)}: the model takes (B, *{want})")
        self.check_missing(state)
        return rollout(self.runner, state, init_hours, self.steps(leads_h), self.step_hours)
