"""The forecaster: a core network wrapped so that it maps physical fields to physical fields.

Inputs (also the ONNX signature):
    state: ``(B, history, V, H, W)`` float32, physical units, NaN where the grid is masked.
    time:  ``(B,)`` float32, hours since 1970-01-01 of the latest state (the initialisation).
Output:
    next:  ``(B, V, H, W)`` float32, physical units one step later, NaN at masked points,
    clipped at zero for non-negative variables.

Normalisation, static inputs (latitude, longitude, validity mask) and time features are inside
the network, so a deployer feeds raw fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from wxmodels.nets.cores import build_core
from wxmodels.schema import get_variable

__all__ = ["Forecaster", "ForecasterSpec", "load_forecaster", "save_forecaster", "spec_from_json"]

SPEC_VERSION = 1
N_STATIC = 3  # latitude, longitude, validity mask
N_TIME = 4  # sin/cos hour of day, sin/cos day of year


@dataclass
class ForecasterSpec:
    """Everything needed to rebuild a forecaster without its weights (JSON-able).

    Attributes:
        net: the :class:`~wxmodels.config.NetConfig` fields.
        variables: canonical variable names, in channel order (V).
        lat, lon: grid coordinates (H, W), latitude ascending.
        step_hours: hours advanced by one forward call.
        mean, std, tendency_std: per-variable normalisation (V), from the training window.
        overrides: architecture changes made by compression (see ``nets.layers.Builder``).
    """

    net: dict[str, Any]
    variables: list[str]
    lat: list[float]
    lon: list[float]
    step_hours: float
    mean: list[float]
    std: list[float]
    tendency_std: list[float]
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def grid(self) -> tuple[int, int]:
        return len(self.lat), len(self.lon)

    @property
    def padding(self) -> str:
        pad = self.net.get("padding", "auto")
        if pad != "auto":
            return pad
        lon = np.asarray(self.lon)
        span = (lon[-1] - lon[0]) + (lon[1] - lon[0] if len(lon) > 1 else 0)
        return "periodic" if abs(span - 360.0) < 1e-3 else "reflect"

    def to_json(self) -> dict[str, Any]:
        return {"_type": "ForecasterSpec", "_version": SPEC_VERSION, "_data": asdict(self)}


def spec_from_json(obj: dict[str, Any]) -> ForecasterSpec:
    """Load a spec written by :meth:`ForecasterSpec.to_json` (only that type is accepted)."""
    if obj.get("_type") != "ForecasterSpec":
        raise ValueError(f"not a ForecasterSpec: _type={obj.get('_type')!r}")
    if obj.get("_version") != SPEC_VERSION:
        raise ValueError(f"ForecasterSpec version {obj.get('_version')} is not supported")
    return ForecasterSpec(**obj["_data"])


class Forecaster(nn.Module):
    """Physical-units one-step forecaster (see module docstring for the signature)."""

    def __init__(self, spec: ForecasterSpec, valid: np.ndarray | None = None):
        super().__init__()
        self.spec = spec
        nv = len(spec.variables)
        h, w = spec.grid
        hist = int(spec.net.get("history", 1))
        self.history = hist
        self.time_features = bool(spec.net.get("time_features", True))
        shape = (1, 1, nv, 1, 1)
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(shape))
        self.register_buffer(
            "tendency_std", torch.tensor(spec.tendency_std, dtype=torch.float32).view(1, nv, 1, 1)
        )
        floor = [0.0 if get_variable(v).nonnegative else -3.0e38 for v in spec.variables]
        self.register_buffer("floor", torch.tensor(floor, dtype=torch.float32).view(1, nv, 1, 1))
        lat = torch.tensor(spec.lat, dtype=torch.float32)
        lon = torch.tensor(spec.lon, dtype=torch.float32)
        self.register_buffer(
            "lat_feature", ((lat - lat.mean()) / (lat.std() + 1e-6)).view(1, 1, h, 1)
        )
        self.register_buffer(
            "lon_feature", ((lon - lon.mean()) / (lon.std() + 1e-6)).view(1, 1, 1, w)
        )
        v = np.ones((h, w), bool) if valid is None else np.asarray(valid, bool)
        self.register_buffer("valid", torch.from_numpy(v.copy()).view(1, 1, h, w))
        cin = hist * nv + N_STATIC + (N_TIME if self.time_features else 0)
        self.core = build_core(
            spec.net.get("arch", "unet"),
            cin=cin,
            cout=nv,
            grid=(h, w),
            width=int(spec.net.get("width", 32)),
            depth=int(spec.net.get("depth", 2)),
            padding=spec.padding,
            activation=spec.net.get("activation", "relu"),
            overrides=spec.overrides,
        )

    def inputs(self, state: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """Assemble the core's input ``(B, cin, H, W)`` from state and time."""
        b, hist, nv, h, w = state.shape
        x = (state - self.mean) / self.std
        x = torch.where(torch.isnan(x), torch.zeros_like(x), x).reshape(b, hist * nv, h, w)
        feats = [
            x,
            self.lat_feature.expand(b, 1, h, w),
            self.lon_feature.expand(b, 1, h, w),
            self.valid.to(x.dtype).expand(b, 1, h, w),
        ]
        if self.time_features:
            hod = 2 * math.pi * torch.remainder(time, 24.0) / 24.0
            doy = 2 * math.pi * torch.remainder(time, 8766.0) / 8766.0  # 365.25 days
            tf = torch.stack([torch.sin(hod), torch.cos(hod), torch.sin(doy), torch.cos(doy)], 1)
            feats.append(tf.view(b, N_TIME, 1, 1).expand(b, N_TIME, h, w))
        return torch.cat(feats, dim=1)

    def forward(self, state: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        last = state[:, -1]
        delta = self.core(self.inputs(state, time))
        nxt = torch.maximum(last + delta * self.tendency_std, self.floor)
        return torch.where(self.valid, nxt, torch.full_like(nxt, float("nan")))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_forecaster(model: Forecaster, directory: str | Path) -> dict[str, Path]:
    """Write ``model.safetensors`` (weights and buffers) and ``model.json`` (spec)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, directory / "model.safetensors", metadata={"format": "wxcompress"})
    (directory / "model.json").write_text(json.dumps(model.spec.to_json(), indent=1))
    return {"weights": directory / "model.safetensors", "spec": directory / "model.json"}


def load_forecaster(directory: str | Path) -> Forecaster:
    """Rebuild a forecaster from ``model.json`` + ``model.safetensors`` (no pickle)."""
    directory = Path(directory)
    spec = spec_from_json(json.loads((directory / "model.json").read_text()))
    tensors = load_file(directory / "model.safetensors")
    model = Forecaster(spec, valid=tensors["valid"].numpy().reshape(spec.grid))
    model.load_state_dict(tensors, strict=True)
    return model.eval()
