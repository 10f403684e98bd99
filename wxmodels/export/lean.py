"""The lean inference graph: the same one-step forecaster with everything constant folded.

A :class:`~wxmodels.nets.forecaster.Forecaster` assembles its core's input on every call:
normalised anomalies of the history, the normalised climatology of now and next, latitude,
longitude, the validity mask, static fields and four time features, each masked where the grid
is invalid. At batch 1 on a small student that assembly (and the output's denormalisation and
damped persistence) is most of an onnxruntime call: dozens of small nodes around a few convs.
The lean form computes the same function with:

- **the input's affine map folded into the first conv**: the first conv (and the pointwise
  linear path) take the raw fields ``[state, clim]``, zeroed at invalid cells (no mask at all on
  a grid without invalid cells), with the normalisation and the anomaly subtraction composed
  into their weights;
- **what is constant is one field**: the first layer's response to the static inputs (latitude,
  longitude, mask, orography...) and to the normalisation offsets on the (padded) grid; the four
  time features enter as a ``(B, 4) @ (4, C*H*W)`` product, exact for every padding (a constant
  channel's response to a padded conv is not constant near the edge under zero padding);
- **the output folded**: damped persistence toward climatology (``clim(t+1) + rho (x(t) -
  clim(t))``) and the pointwise linear path are one 1 x 1 conv on the raw fields; the tendency
  scale is a ``Mul`` onnxruntime fuses into the head; the mask is an ``Add`` of a NaN/0 field;
- **zero padding inside the convs** for models trained with it (no ``Pad`` node, so the whole
  core stays in onnxruntime's blocked layout).

The composed weights and the constant fields are *computed in the graph* from the layers' own
weights and a few small buffers, and the file is exported without constant folding: onnxruntime
evaluates them once, when it loads the model. So the file keeps the trained weights as they are
(a clustered model's weights stay on their codebook and pack as small as before), and the graph
that runs is the folded one.

Exactness: the same function as the forecaster, to float rounding, wherever the inputs are
finite at the model's valid cells (what the store guarantees; masked cells may hold anything).
A value missing at a valid cell is an error the caller must catch (the edge runtime refuses such
input): the lean graph then returns NaN near it, the torch model a guess.

The folding applies to the built-in conv cores (U-Net, ResNet, and ensembles of them) without
the spatial path; :func:`lean_forecaster` returns ``None`` for anything else, which is exported as
it is.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from wxmodels.nets.cores import EnsembleCore, ResNetCore, UNetCore
from wxmodels.nets.forecaster import N_TIME, Forecaster
from wxmodels.nets.layers import DomainPad, LowRankConv2d, PaddedConv

__all__ = ["LEAN_TAG", "LeanForecaster", "lean_forecaster"]

LEAN_TAG = "lean_"
"""Prefix of the lean form's own modules (and so of their ONNX node names): the layers that see
raw physical fields, which a quantizer must leave in float."""


class _Clock:
    """Holds the current call's time features for the folded layers (set by the forward)."""

    tf: torch.Tensor | None = None


class _Consts(nn.Module):
    """The core's constant inputs, built from compact buffers when called: row 0 the
    normalisation offsets at the valid cells and the static fields, row ``1 + j`` the same
    plus time feature ``j`` set to 1 (the others 0). Everything computed from them is constant,
    so onnxruntime evaluates it once when it loads the model; the file keeps the layers'
    own weights (clustered weights stay clustered)."""

    offsets: torch.Tensor
    valid: torch.Tensor
    lat: torch.Tensor
    lon: torch.Tensor
    statics: torch.Tensor
    onehot: torch.Tensor

    def __init__(self, m: Forecaster, offsets: torch.Tensor, idx_tf: list[int], pad_hw):
        super().__init__()
        cin = offsets.numel()
        self.register_buffer("offsets", offsets.float().view(1, cin, 1, 1))
        self.register_buffer("valid", m.valid.float().view(1, 1, *m.valid.shape[-2:]))
        self.register_buffer("lat", m.lat_feature.clone())
        self.register_buffer("lon", m.lon_feature.clone())
        self.register_buffer("statics", m.statics.clone())
        onehot = torch.zeros(len(idx_tf), cin)
        for j, c in enumerate(idx_tf):
            onehot[j, c] = 1.0
        self.register_buffer("onehot", onehot.view(len(idx_tf), cin, 1, 1))
        self.static_at = int(m.history * len(m.spec.variables))
        self.pad_hw = tuple(pad_hw)

    def forward(self, padded: bool = True) -> torch.Tensor:
        valid = self.valid
        h, w = valid.shape[-2:]
        z = self.offsets * valid
        st = torch.cat(
            [self.lat.expand(1, 1, h, w), self.lon.expand(1, 1, h, w), valid, self.statics], 1
        )
        a, n = self.static_at, st.shape[1]
        z = torch.cat([z[:, :a], st, z[:, a + n :]], 1)
        if self.onehot.shape[0]:
            z = torch.cat([z, z + self.onehot], 0)
        ph, pw = self.pad_hw
        if padded and (ph or pw):  # the U-Net pads its input (replicate) to a multiple of 2**depth
            z = F.pad(z, (0, pw, 0, ph), mode="replicate")
        return z


class _RawConv(nn.Module):
    """A conv on the raw fields: the layer's own weights composed with the input map ``a``
    (``(cin, n_raw)``), without bias (the bias is in the constant field)."""

    a: torch.Tensor
    second: Any

    def __init__(self, conv: nn.Module, a: torch.Tensor):
        super().__init__()
        if isinstance(conv, LowRankConv2d):
            inner, self.second = conv.first, conv.second
        elif isinstance(conv, nn.Conv2d) and conv.groups == 1:
            inner, self.second = conv, None
        else:
            raise TypeError(f"cannot fold {type(conv).__name__}")
        self.inner = inner
        self.register_buffer("a", a.float().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c: Any = self.inner
        weight = torch.einsum("oikl,ir->orkl", c.weight, self.a)
        y = F.conv2d(x, weight, None, c.stride, c.padding, c.dilation)
        return y if self.second is None else F.conv2d(y, self.second.weight)


class _Field(nn.Module):
    """``layer``'s output on the constant inputs plus ``tf`` times its response to each time
    feature: ``(B or 1, C, H, W)``, times ``scale`` when given; constant but for the
    ``(B, 4) @ (4, C*H*W)`` product."""

    scale: torch.Tensor | None

    def __init__(
        self, layer: nn.Module, consts: _Consts, padded: bool, scale: torch.Tensor | None = None
    ):
        super().__init__()
        self.layer = layer
        self.consts = [consts]  # shared, not a child (its buffers belong to the lean model)
        self.padded = padded
        self.register_buffer("scale", scale)

    def forward(self, tf: torch.Tensor | None) -> torch.Tensor:
        rows = self.layer(self.consts[0](self.padded))
        if self.scale is not None:
            rows = rows * self.scale
        if tf is None or rows.shape[0] == 1:
            return rows[:1]
        c, h, w = rows.shape[1:]
        resp = (rows[1:] - rows[:1]).reshape(rows.shape[0] - 1, -1)
        return (tf @ resp + rows[:1].reshape(1, -1)).view(-1, c, h, w)


class _FoldedConv(nn.Module):
    """A core's first conv on the raw fields: ``conv(pad(raw)) + field(tf)``, the field being
    the layer's response (as trained) to the constant inputs and to each time feature."""

    def __init__(self, first: PaddedConv, a: torch.Tensor, consts: _Consts, clock: _Clock):
        super().__init__()
        self.pad = first.pad
        self.lean_conv = _RawConv(first.conv, a)
        self.lean_field = _Field(first, consts, padded=True)
        self.clock = clock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lean_conv(self.pad(x)) + self.lean_field(self.clock.tf)


class _OutPath(nn.Module):
    """Damped persistence and the pointwise linear path on the raw fields: one 1 x 1 conv
    (``base`` plus the linear path's weights composed with the input map and the tendency
    scale) and the linear path's constant field."""

    base: torch.Tensor
    a: torch.Tensor
    tstd: torch.Tensor
    skip: Any

    def __init__(
        self, base: torch.Tensor, skip: nn.Module | None, a, tstd, consts: _Consts
    ) -> None:
        super().__init__()
        self.register_buffer("base", base)
        self.register_buffer("a", a.float())
        self.register_buffer("tstd", tstd.clone())
        self.skip = skip
        self.field = _Field(skip, consts, False, tstd.clone()) if skip is not None else None

    def forward(self, raw: torch.Tensor, tf: torch.Tensor | None) -> torch.Tensor:
        if self.skip is None or self.field is None:
            return F.conv2d(raw, self.base)
        w_skip: Any = self.skip.weight
        tstd = self.tstd.view(-1, 1, 1, 1)
        weight = self.base + torch.einsum("oikl,ir->orkl", w_skip, self.a) * tstd
        return F.conv2d(raw, weight) + self.field(tf)


def _first_convs(core: nn.Module) -> list[tuple[nn.Module, str]] | None:
    """``(parent, attribute)`` of the layer(s) that see the core's input, or ``None`` where
    the core is not one the folding knows."""
    members: Any = core.members if isinstance(core, EnsembleCore) else [core]
    out: list[tuple[nn.Module, str]] = []
    for m in members:
        if isinstance(m, UNetCore):
            out.append((m.enc[0], "conv1"))
        elif isinstance(m, ResNetCore):
            out.append((m, "stem"))
        else:
            return None
    return out


def _unet_padding(core: nn.Module) -> tuple[int, int]:
    first = core.members[0] if isinstance(core, EnsembleCore) else core
    return first.pad_hw if isinstance(first, UNetCore) else (0, 0)


def _zero_padding_inside(core: nn.Module) -> None:
    """Zero padding as the convs' own padding (no separate ``Pad`` node). A folded first conv
    and the layer it came from share their conv: both lose their ``Pad``."""
    mod: Any
    for mod in list(core.modules()):
        if isinstance(mod, PaddedConv):
            conv: Any = mod.conv.first if isinstance(mod.conv, LowRankConv2d) else mod.conv
        elif isinstance(mod, _FoldedConv):
            conv = mod.lean_conv.inner
        else:
            continue
        pad = mod.pad
        if not isinstance(pad, DomainPad) or pad.mode != "zeros" or pad.p == 0:
            continue
        if not isinstance(conv, nn.Conv2d):
            continue
        if conv.padding == (0, 0):
            conv.padding = (pad.p, pad.p)
        elif conv.padding != (pad.p, pad.p):
            continue
        mod.pad = nn.Identity()


class LeanForecaster(nn.Module):
    """The forecaster's step as the lean graph computes it (see the module docstring); build it
    with :func:`lean_forecaster`. Same signature and outputs as the forecaster."""

    valid: torch.Tensor
    tstd: torch.Tensor
    floor: torch.Tensor
    zero: torch.Tensor
    period: torch.Tensor
    freq: torch.Tensor
    phase: torch.Tensor
    core: Any

    def __init__(self, model: Forecaster):
        super().__init__()
        m = copy.deepcopy(model).eval()
        spec = m.spec
        nv, hist = len(spec.variables), m.history
        h, w = spec.grid
        ns = m.statics.shape[1]
        nx = hist * nv
        self.grid, self.climatology, self.time_features = (h, w), m.climatology, m.time_features
        self.clock = _Clock()
        # the core's input channels: x (nx) | lat, lon, valid, statics | c (2 nv) | tf (4)
        o = nx + 3 + ns
        idx_c = list(range(o, o + 2 * nv)) if m.climatology else []
        o += len(idx_c)
        idx_tf = list(range(o, o + N_TIME)) if m.time_features else []
        cin = o + len(idx_tf)
        # ... as an affine map of the raw fields [state (nx), clim ((hist + 1) nv)]:
        # inp = a @ raw + b at valid cells, 0 at invalid ones
        n_raw = nx + ((hist + 1) * nv if m.climatology else 0)
        mean, std = m.mean.view(-1).double(), m.std.view(-1).double()
        a = torch.zeros(cin, n_raw, dtype=torch.float64)
        b = torch.zeros(cin, dtype=torch.float64)
        if m.climatology:
            asd = m.anomaly_std.view(-1).double()
            for k in range(nx):
                a[k, k], a[k, nx + k] = 1 / asd[k % nv], -1 / asd[k % nv]
            for j, c in enumerate(idx_c):
                a[c, nx + (hist - 1) * nv + j] = 1 / std[j % nv]
                b[c] = -mean[j % nv] / std[j % nv]
        else:
            for k in range(nx):
                a[k, k], b[k] = 1 / std[k % nv], -mean[k % nv] / std[k % nv]
        firsts = _first_convs(m.core)
        if firsts is None or m.spatial is not None:
            raise TypeError("the lean form folds the built-in conv cores without a spatial path")
        self.lean_consts = _Consts(m, b, idx_tf, _unet_padding(m.core))
        for parent, attr in firsts:
            first: PaddedConv = getattr(parent, attr)
            setattr(parent, attr, _FoldedConv(first, a, self.lean_consts, self.clock))
        base = torch.zeros(nv, n_raw, 1, 1)
        last = (hist - 1) * nv
        if m.climatology:
            rho = torch.sigmoid(m.damping_logit).detach().view(-1)
            for v in range(nv):
                base[v, last + v] += rho[v]
                base[v, nx + last + v] -= rho[v]
                base[v, nx + hist * nv + v] += 1.0
        else:
            for v in range(nv):
                base[v, last + v] += 1.0
        self.lean_out = _OutPath(base, m.skip, a, m.tendency_std, self.lean_consts)
        self.register_buffer("tstd", m.tendency_std.clone())
        _zero_padding_inside(m.core)
        self.core = m.core
        self.register_buffer("valid", m.valid.view(1, 1, h, w).clone())
        self.masked = not bool(m.valid.all())  # a grid without invalid cells needs no mask
        self.floored = bool((m.floor > -1e38).any())
        self.register_buffer("floor", m.floor.clone())
        self.register_buffer("zero", torch.zeros(()))
        self.n_raw = n_raw
        tau = 2 * math.pi
        self.register_buffer("period", torch.tensor([[24.0, 24.0, 8766.0, 8766.0]]))
        self.register_buffer("freq", torch.tensor([[tau / 24, tau / 24, tau / 8766, tau / 8766]]))
        self.register_buffer("phase", torch.tensor([[0.0, math.pi / 2, 0.0, math.pi / 2]]))
        self.spec = spec
        self.history = hist

    def forward(
        self, state: torch.Tensor, time: torch.Tensor, clim: torch.Tensor | None = None
    ) -> torch.Tensor:
        h, w = self.grid
        nx = self.spec.history * len(self.spec.variables)
        raw = state.reshape(-1, nx, h, w)
        if self.climatology:
            if clim is None:
                raise ValueError("this forecaster takes the climatology as an input")
            raw = torch.cat([raw, clim.reshape(-1, self.n_raw - nx, h, w)], 1)
        if self.masked:
            raw = torch.where(self.valid, raw, self.zero)
        # sin/cos of hour of day and day of year (cos x = sin(x + pi/2)); times are positive
        self.clock.tf = (
            torch.sin(torch.fmod(time.unsqueeze(1), self.period) * self.freq + self.phase)
            if self.time_features
            else None
        )
        # the core's tendency (its scale folds into the head at load), persistence and the
        # pointwise path
        out = self.core(raw) * self.tstd + self.lean_out(raw, self.clock.tf)
        self.clock.tf = None
        if self.floored:
            out = torch.maximum(out, self.floor)
        if not self.masked:
            return out
        # NaN at invalid cells, 0 elsewhere: added (cheaper than a Where)
        return out + torch.where(self.valid, self.zero, self.zero / self.zero)


def lean_forecaster(model: Forecaster) -> LeanForecaster | None:
    """The lean form of ``model``, or ``None`` where its core is not one the folding knows
    (a transformer, a plug-in, a model with the spatial path)."""
    if model.spatial is not None or _first_convs(model.core) is None:
        return None
    try:
        return LeanForecaster(model).eval()
    except TypeError:
        return None
