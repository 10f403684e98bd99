"""The lean inference graph: the same one-step forecaster with everything constant folded.

A :class:`~wxmodels.nets.forecaster.Forecaster` assembles its core's input on every call:
normalised anomalies of the history, the normalised climatology of now and next, latitude,
longitude, the validity mask, static fields and four time features, each masked where the grid
is invalid. At batch 1 on a small student that assembly (and the output's denormalisation and
damped persistence) is most of an onnxruntime call: dozens of small nodes around a few convs.
The lean form computes the same function with:

- **the input's affine map folded into the first conv**: the first conv (and the pointwise
  linear path) take the raw fields ``[state, clim]``, zeroed at invalid cells, with the
  normalisation and the anomaly subtraction in their weights;
- **what is constant folded into one field**: the first layer's response to the static inputs
  (latitude, longitude, mask, orography...) and to the normalisation offsets, computed once on
  the (padded) grid; the four time features enter as a ``(B, 4) @ (4, C*H*W)`` product, exact
  for every padding (a constant channel's response to a padded conv is not constant near the
  edge under zero padding);
- **the output folded**: damped persistence toward climatology (``clim(t+1) + rho (x(t) -
  clim(t))``) and the pointwise linear path are one 1 x 1 conv on the raw fields; the tendency
  scale is in the last layers' weights;
- **zero padding inside the convs** for models trained with it (no ``Pad`` node, so the whole
  core stays in onnxruntime's blocked layout).

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


class _TimeField(nn.Module):
    """``tf @ M1 + M0`` reshaped to a field: the response of a linear layer to the constant
    inputs (``M0``) and to each time feature (rows of ``M1``)."""

    m0: torch.Tensor
    m1: torch.Tensor | None

    def __init__(self, m0: torch.Tensor, m1: torch.Tensor | None, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape
        self.register_buffer("m0", m0.reshape(1, -1).contiguous())
        self.register_buffer("m1", None if m1 is None else m1.reshape(m1.shape[0], -1).contiguous())

    def forward(self, tf: torch.Tensor | None) -> torch.Tensor:
        if self.m1 is None or tf is None:
            return self.m0.view(1, *self.shape)
        return (tf @ self.m1 + self.m0).view(-1, *self.shape)


class _FoldedConv(nn.Module):
    """A core's first conv on the raw fields: ``conv(pad(raw)) + field(tf)``."""

    def __init__(self, pad: nn.Module, conv: nn.Module, field: _TimeField, clock: _Clock):
        super().__init__()
        self.pad = pad
        self.lean_conv = conv
        self.lean_time = field
        self.clock = clock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lean_conv(self.pad(x)) + self.lean_time(self.clock.tf)


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


def _heads(core: nn.Module) -> list[nn.Module]:
    members: Any = core.members if isinstance(core, EnsembleCore) else [core]
    return [m.head.conv for m in members]


def _scale_out(conv: Any, scale: torch.Tensor) -> None:
    """Multiply a conv's (or a low-rank conv's) output channels by ``scale``."""
    last = conv.second if isinstance(conv, LowRankConv2d) else conv
    last.weight.mul_(scale.view(-1, *([1] * (last.weight.dim() - 1))))
    if last.bias is not None:
        last.bias.mul_(scale)


def _fold_weights(conv: Any, a: torch.Tensor) -> nn.Module:
    """A bias-free copy of ``conv`` acting on the raw fields: input channels mapped by ``a``
    (``(cin, n_raw)``: the core's input channels as linear functions of the raw ones)."""
    if isinstance(conv, LowRankConv2d):
        first: Any = conv.first
        second = conv.second
        k, rank = first.kernel_size, first.out_channels
        out = LowRankConv2d(a.shape[1], second.out_channels, k, rank, bias=False)
        out.first.weight.copy_(torch.einsum("oikl,ir->orkl", first.weight, a))
        out.first.stride, out.first.padding = first.stride, first.padding
        out.first.dilation = first.dilation
        out.second.weight.copy_(second.weight)
        return out
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
        raise TypeError(f"cannot fold {type(conv).__name__}")
    c: Any = conv
    new = nn.Conv2d(
        a.shape[1],
        c.out_channels,
        c.kernel_size,
        stride=c.stride,
        padding=c.padding,
        dilation=c.dilation,
        bias=False,
    )
    new.weight.copy_(torch.einsum("oikl,ir->orkl", c.weight, a))
    return new


def _zero_padding_inside(core: nn.Module) -> None:
    """Zero padding as the convs' own padding (no separate ``Pad`` node)."""
    for mod in core.modules():
        if not isinstance(mod, PaddedConv | _FoldedConv) or not isinstance(mod.pad, DomainPad):
            continue
        if mod.pad.mode != "zeros" or mod.pad.p == 0:
            continue
        conv = mod.conv if isinstance(mod, PaddedConv) else mod.lean_conv
        inner = conv.first if isinstance(conv, LowRankConv2d) else conv
        if isinstance(inner, nn.Conv2d) and inner.padding == (0, 0):
            inner.padding = (mod.pad.p, mod.pad.p)
            mod.pad = nn.Identity()


class LeanForecaster(nn.Module):
    """The forecaster's step as the lean graph computes it (see the module docstring); build it
    with :func:`lean_forecaster`. Same signature and outputs as the forecaster."""

    invalid: torch.Tensor
    nan_outside: torch.Tensor
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
        valid = m.valid.to(torch.float64).view(1, 1, h, w)
        # row 0: the constant inputs; row 1 + j: time feature j alone (the others 0)
        rows = 1 + len(idx_tf)
        z = (b.view(1, -1, 1, 1) * valid).repeat(rows, 1, 1, 1)
        z[:, nx : nx + 3 + ns] = torch.cat(
            [
                m.lat_feature.double().expand(1, 1, h, w),
                m.lon_feature.double().expand(1, 1, h, w),
                valid,
                m.statics.double(),
            ],
            1,
        )
        for j, c in enumerate(idx_tf):
            z[1 + j, c] = 1.0
        firsts = _first_convs(m.core)
        if firsts is None or m.spatial is not None:
            raise TypeError("the lean form folds the built-in conv cores without a spatial path")
        tstd = m.tendency_std.view(-1)
        with torch.no_grad():
            zc = z
            ph, pw = _unet_padding(m.core)
            if ph or pw:  # the U-Net pads its input (replicate) to a multiple of 2**depth
                zc = F.pad(zc, (0, pw, 0, ph), mode="replicate")
            for parent, attr in firsts:
                first: PaddedConv = getattr(parent, attr)
                # the constant responses in double precision, from the layer itself
                field = copy.deepcopy(first).double()(zc).float()
                resp = field - field[0:1] if rows > 1 else None
                folded = _fold_weights(first.conv, a.float())
                shape = tuple(field.shape[1:])
                setattr(
                    parent,
                    attr,
                    _FoldedConv(
                        first.pad,
                        folded,
                        _TimeField(field[0], None if resp is None else resp[1:], shape),
                        self.clock,
                    ),
                )
            for head in _heads(m.core):
                _scale_out(head, tstd)
            # the pointwise path and the persistence on the raw fields, as one 1 x 1 conv
            wout = torch.zeros(nv, n_raw, dtype=torch.float64)
            if m.skip is not None:
                wout += (m.skip.weight[:, :, 0, 0].double() @ a) * tstd.double().view(-1, 1)
                skip64 = copy.deepcopy(m.skip).double()
                sfield = (skip64(z) * tstd.double().view(1, -1, 1, 1)).float()
            else:
                sfield = torch.zeros(rows, nv, h, w)
            last = (hist - 1) * nv
            if m.climatology:
                rho = torch.sigmoid(m.damping_logit).view(-1).double()
                for v in range(nv):
                    wout[v, last + v] += rho[v]
                    wout[v, nx + last + v] -= rho[v]
                    wout[v, nx + hist * nv + v] += 1.0
            else:
                for v in range(nv):
                    wout[v, last + v] += 1.0
            self.lean_out = nn.Conv2d(n_raw, nv, 1, bias=False)
            self.lean_out.weight.copy_(wout.float()[:, :, None, None])
            sresp = sfield - sfield[0:1] if rows > 1 else None
            self.lean_time = _TimeField(sfield[0], None if sresp is None else sresp[1:], (nv, h, w))
        _zero_padding_inside(m.core)
        self.core = m.core
        self.register_buffer("invalid", ~m.valid.view(1, 1, h, w).clone())
        # NaN at invalid cells, 0 elsewhere: added to the output (cheaper than a Where)
        self.register_buffer("nan_outside", torch.where(m.valid, 0.0, float("nan")).float())
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
        raw = torch.where(self.invalid, self.zero, raw)
        # sin/cos of hour of day and day of year (cos x = sin(x + pi/2)); times are positive
        self.clock.tf = (
            torch.sin(torch.fmod(time.unsqueeze(1), self.period) * self.freq + self.phase)
            if self.time_features
            else None
        )
        out = self.core(raw) + self.lean_out(raw) + self.lean_time(self.clock.tf)
        self.clock.tf = None
        if self.floored:
            out = torch.maximum(out, self.floor)
        return out + self.nan_outside


def lean_forecaster(model: Forecaster) -> LeanForecaster | None:
    """The lean form of ``model``, or ``None`` where its core is not one the folding knows
    (a transformer, a plug-in, a model with the spatial path)."""
    if model.spatial is not None or _first_convs(model.core) is None:
        return None
    try:
        return LeanForecaster(model).eval()
    except TypeError:
        return None
