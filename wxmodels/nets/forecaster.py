"""The forecaster: a core network wrapped so that it maps physical fields to physical fields.

Inputs (also the ONNX signature):
    state: ``(B, history, V, H, W)`` float32, physical units, NaN where the grid is masked.
    time:  ``(B,)`` float32, hours since 1970-01-01 of the latest state (the initialisation).
    clim:  ``(B, history + 1, V, H, W)`` float32, only for models with ``climatology=True``:
           the climatology at the history times and at the next step's valid time.
Output:
    next:  ``(B, V, H, W)`` float32, physical units one step later, NaN at masked points,
    clipped at zero for non-negative variables.

With a climatology the network works on anomalies: it sees the normalised anomalies of the
history and the normalised climatology of now and of the next step, and predicts

    next = clim(t+1) + rho * (state(t) - clim(t)) + core(...) * tendency_std,

where ``rho`` (per variable, learned, initialised to the anomalies' lag-1 autocorrelation) is the
blending toward climatology that dominates at long leads. Without one it predicts
``next = state(t) + core(...) * tendency_std``.

Normalisation, static inputs (latitude, longitude, validity mask, and orography / land-sea mask
when the store has them) and time features are inside the network, so a deployer feeds raw
fields (and the climatology shipped with the model).
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

__all__ = [
    "Forecaster",
    "ForecasterSpec",
    "ensemble",
    "load_forecaster",
    "member",
    "save_forecaster",
    "spec_from_json",
]

SPEC_VERSION = 2
N_STATIC = 3  # latitude, longitude, validity mask
N_TIME = 4  # sin/cos hour of day, sin/cos day of year
MAX_SPATIAL_INPUTS = 8192  # the spatial path's normal equations stay under ~0.5 GB


@dataclass
class ForecasterSpec:
    """Everything needed to rebuild a forecaster without its weights (JSON-able).

    Attributes:
        net: the :class:`~wxmodels.config.NetConfig` fields.
        variables: canonical variable names, in channel order (V).
        lat, lon: grid coordinates (H, W), latitude ascending.
        step_hours: hours advanced by one forward call.
        mean, std: per-variable normalisation of the fields (V).
        tendency_std: scale of the network's output per variable (V): std of one-step
            tendencies (of anomalies, with a climatology).
        overrides: architecture changes made by compression (see ``nets.layers.Builder``).
        statics: names of extra static input fields (their values are buffers).
        climatology: whether the model takes the climatology as input (anomaly form).
        anomaly_std: std of the anomalies, to normalise them (V); with a climatology.
        damping: initial anomaly persistence per step (V); with a climatology.
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
    statics: list[str] = field(default_factory=list)
    climatology: bool = False
    anomaly_std: list[float] | None = None
    damping: list[float] | None = None

    @property
    def grid(self) -> tuple[int, int]:
        return len(self.lat), len(self.lon)

    @property
    def history(self) -> int:
        return int(self.net.get("history", 1))

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
    if obj.get("_version") not in (1, SPEC_VERSION):
        raise ValueError(f"ForecasterSpec version {obj.get('_version')} is not supported")
    return ForecasterSpec(**obj["_data"])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p))


class Forecaster(nn.Module):
    """Physical-units one-step forecaster (see the module docstring for the signature)."""

    # buffers (registered in __init__) and submodules, for type checkers
    mean: torch.Tensor
    std: torch.Tensor
    tendency_std: torch.Tensor
    floor: torch.Tensor
    lat_feature: torch.Tensor
    lon_feature: torch.Tensor
    valid: torch.Tensor
    statics: torch.Tensor
    anomaly_std: torch.Tensor
    damping_logit: nn.Parameter
    core: Any
    skip: nn.Conv2d | None
    spatial: SpatialPath | None

    def __init__(
        self,
        spec: ForecasterSpec,
        valid: np.ndarray | None = None,
        statics: np.ndarray | None = None,
    ):
        super().__init__()
        self.spec = spec
        nv = len(spec.variables)
        h, w = spec.grid
        self.history = spec.history
        self.time_features = bool(spec.net.get("time_features", True))
        self.climatology = bool(spec.climatology)
        self.members = int(spec.net.get("members", 1))
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
        ns = len(spec.statics)
        st = (
            np.zeros((ns, h, w), np.float32) if statics is None else np.asarray(statics, np.float32)
        )
        if st.shape != (ns, h, w):
            raise ValueError(f"statics have shape {st.shape}, expected {(ns, h, w)}")
        st = np.where(np.isfinite(st), st, 0.0)
        mu = st.reshape(ns, -1).mean(axis=1).reshape(ns, 1, 1) if ns else st
        sd = st.reshape(ns, -1).std(axis=1).reshape(ns, 1, 1) + 1e-6 if ns else st
        self.register_buffer(
            "statics", torch.from_numpy(((st - mu) / sd).astype(np.float32)).view(1, ns, h, w)
        )
        cin = self.history * nv + N_STATIC + ns + (N_TIME if self.time_features else 0)
        if self.climatology:
            cin += 2 * nv
            asd = spec.anomaly_std or spec.std
            self.register_buffer("anomaly_std", torch.tensor(asd, dtype=torch.float32).view(shape))
            rho = spec.damping or [0.9] * nv
            self.damping_logit = nn.Parameter(
                torch.tensor(_logit(np.asarray(rho)), dtype=torch.float32).view(1, nv, 1, 1)
            )
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
            dropout=float(spec.net.get("dropout", 0.0)),
            members=self.members,
            heads=int(spec.net.get("heads", 4)),
            patch=int(spec.net.get("patch", 2)),
            window=int(spec.net.get("window", 0)),
            mlp_ratio=float(spec.net.get("mlp_ratio", 2.0)),
            options=spec.net.get("options") or {},
        )
        # a pointwise linear path beside the network: the model contains linear regression on
        # its inputs as a special case (initialised at zero, so it starts as the plain network)
        self.skip = None
        if spec.net.get("linear_skip", False):
            skip = nn.Conv2d(cin, nv, 1)
            nn.init.zeros_(skip.weight)
            if skip.bias is not None:
                nn.init.zeros_(skip.bias)
            self.skip = skip
        # a reduced-rank linear map of the whole history field to the whole increment
        # (initialised with a zero output, so it too starts as the plain network)
        self.spatial = None
        rank = int(spec.net.get("spatial_rank", 0))
        if rank:
            n_in, n_out = self.history * nv * h * w, nv * h * w
            if n_in > MAX_SPATIAL_INPUTS:
                raise ValueError(
                    f"net.spatial_rank needs history x variables x cells <= "
                    f"{MAX_SPATIAL_INPUTS}; this model has {n_in}: set it to 0 or use a "
                    "coarser grid"
                )
            # an ensemble's map is its members' maps side by side (their mean, exactly)
            r = min(rank, n_in, n_out) * self.members
            self.spatial = SpatialPath(n_in, r, n_out)

    def inputs(
        self, state: torch.Tensor, time: torch.Tensor, clim: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Assemble the core's input ``(B, cin, H, W)``."""
        b, hist, nv, h, w = state.shape
        if self.climatology:
            if clim is None:
                raise ValueError("this forecaster takes the climatology as an input")
            x = (state - clim[:, :hist]) / self.anomaly_std
        else:
            x = (state - self.mean) / self.std
        # outside the domain (and wherever a value is missing) every field input is 0, whatever
        # the caller supplied there
        keep = self.valid.view(1, 1, 1, h, w)
        x = torch.where(torch.isnan(x) | ~keep, torch.zeros_like(x), x).reshape(b, hist * nv, h, w)
        feats = [
            x,
            self.lat_feature.expand(b, 1, h, w),
            self.lon_feature.expand(b, 1, h, w),
            self.valid.to(x.dtype).expand(b, 1, h, w),
        ]
        if self.statics.shape[1]:
            feats.append(self.statics.expand(b, -1, h, w))
        if clim is not None and self.climatology:
            c = (clim[:, -2:] - self.mean) / self.std
            c = torch.where(torch.isnan(c) | ~keep, torch.zeros_like(c), c)
            feats.append(c.reshape(b, 2 * nv, h, w))
        if self.time_features:
            hod = 2 * math.pi * torch.remainder(time, 24.0) / 24.0
            doy = 2 * math.pi * torch.remainder(time, 8766.0) / 8766.0  # 365.25 days
            tf = torch.stack([torch.sin(hod), torch.cos(hod), torch.sin(doy), torch.cos(doy)], 1)
            feats.append(tf.view(b, N_TIME, 1, 1).expand(b, N_TIME, h, w))
        return torch.cat(feats, dim=1)

    def forward(
        self, state: torch.Tensor, time: torch.Tensor, clim: torch.Tensor | None = None
    ) -> torch.Tensor:
        # NaNs (outside the domain) are zeroed before any arithmetic that involves parameters:
        # 0 * NaN in the backward pass would poison the gradients even where masked
        inp = self.inputs(state, time, clim)
        out = self.core(inp) if self.skip is None else self.core(inp) + self.skip(inp)
        if self.spatial is not None:
            b, _, h, w = out.shape
            field = inp[:, : self.history * out.shape[1]].flatten(1)
            out = out + self.spatial(field).view(b, -1, h, w)
        nxt = self.base(state, clim) + out * self.tendency_std
        nxt = torch.maximum(nxt, self.floor)
        return torch.where(self.valid, nxt, torch.full_like(nxt, float("nan")))

    def base(self, state: torch.Tensor, clim: torch.Tensor | None = None) -> torch.Tensor:
        """What the next state is without the networks: persistence, or with a climatology
        ``clim(t+1) + rho * (state(t) - clim(t))`` (damped anomaly persistence)."""
        last = _zero_nan(state[:, -1])
        if not self.climatology:
            return last
        if clim is None:
            raise ValueError("this forecaster takes the climatology as an input")
        rho = torch.sigmoid(self.damping_logit)
        return _zero_nan(clim[:, -1]) + rho * (last - _zero_nan(clim[:, -2]))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class SpatialPath(nn.Module):
    """``outer(inner(x))``: a rank-``r`` linear map of the flattened history field to the
    flattened increment (``inner`` has no bias; ``outer`` starts at zero)."""

    def __init__(self, n_in: int, rank: int, n_out: int):
        super().__init__()
        self.inner = nn.Linear(n_in, rank, bias=False)
        self.outer = nn.Linear(rank, n_out)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.inner(x))


def ensemble(members: list[Forecaster]) -> Forecaster:
    """One forecaster whose step is the mean of the members' steps (the same spec, each
    with one core). Exact: the linear path and the damping enter the step linearly, so they
    are averaged (the damping as a probability, not a logit); only the final clipping at zero
    of non-negative variables acts on the mean."""
    first = members[0]
    if len(members) == 1:
        return first
    spec = ForecasterSpec(**{**asdict(first.spec), "net": {**first.spec.net}})
    spec.net["members"] = len(members)
    spec.overrides = {
        f"members.{k}.{fqn}": o
        for k, m in enumerate(members)
        for fqn, o in m.spec.overrides.items()
    }
    h, w = spec.grid
    out = Forecaster(spec, valid=first.valid.view(h, w).cpu().numpy(), statics=None)
    with torch.no_grad():
        out.statics.copy_(first.statics.cpu())  # already normalised
        for k, m in enumerate(members):
            out.core.members[k].load_state_dict(m.core.state_dict())
        skips = [m.skip for m in members if m.skip is not None]
        if out.skip is not None and len(skips) == len(members):
            out.skip.weight.copy_(torch.stack([k.weight for k in skips]).mean(0))
            if out.skip.bias is not None:
                biases = [k.bias for k in skips if k.bias is not None]
                out.skip.bias.copy_(torch.stack(biases).mean(0))
        spatials = [m.spatial for m in members if m.spatial is not None]
        if out.spatial is not None and len(spatials) == len(members):
            # the mean of k rank-r maps is one rank-kr map: inner maps stacked, outer maps
            # side by side and scaled by 1/k
            out.spatial.inner.weight.copy_(torch.cat([sp.inner.weight for sp in spatials], 0))
            k = len(spatials)
            out.spatial.outer.weight.copy_(torch.cat([sp.outer.weight for sp in spatials], 1) / k)
            out.spatial.outer.bias.copy_(torch.stack([sp.outer.bias for sp in spatials]).mean(0))
        if out.climatology:
            rho = torch.stack([torch.sigmoid(m.damping_logit) for m in members]).mean(0)
            out.damping_logit.copy_(torch.log(rho / (1 - rho)))
    return out.eval()


def member(model: Forecaster, k: int) -> Forecaster:
    """Member ``k`` of an ensemble as a forecaster of its own (for a warm start)."""
    if model.members == 1:
        return model
    spec = ForecasterSpec(**{**asdict(model.spec), "net": {**model.spec.net, "members": 1}})
    p = f"members.{k}."
    spec.overrides = {f[len(p) :]: o for f, o in model.spec.overrides.items() if f.startswith(p)}
    h, w = spec.grid
    out = Forecaster(spec, valid=model.valid.view(h, w).cpu().numpy())
    state = {
        (name.replace(f"core.members.{k}.", "core.", 1)): v
        for name, v in model.state_dict().items()
        if not name.startswith("core.members.") or name.startswith(f"core.members.{k}.")
    }
    if model.spatial is not None:
        # member k's block of the side-by-side maps (its own bias is not kept apart from the
        # others': the mean stands in, which a warm start then refits)
        r = model.spatial.inner.weight.shape[0] // model.members
        inner, outer = model.spatial.inner.weight, model.spatial.outer.weight
        state["spatial.inner.weight"] = inner[k * r : (k + 1) * r]
        state["spatial.outer.weight"] = outer[:, k * r : (k + 1) * r] * model.members
    out.load_state_dict(state, strict=True)
    return out


def _zero_nan(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(x), torch.zeros_like(x), x)


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
    h, w = spec.grid
    statics = tensors["statics"].numpy().reshape(-1, h, w) if "statics" in tensors else None
    model = Forecaster(spec, valid=tensors["valid"].numpy().reshape(spec.grid), statics=statics)
    model.load_state_dict(tensors, strict=True)
    return model.eval()
