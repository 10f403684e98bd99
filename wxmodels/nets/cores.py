"""Core networks: ``(B, cin, H, W) -> (B, cout, H, W)`` on a fixed grid: the built-in conv
cores here, the transformer in :mod:`wxmodels.nets.transformer`, a user's own through
:mod:`wxmodels.nets.plugins`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from wxmodels.nets.layers import Builder
from wxmodels.nets.plugins import build_plugin
from wxmodels.nets.transformer import TransformerCore

__all__ = ["EnsembleCore", "ResNetCore", "TransformerCore", "UNetCore", "build_core"]


class UNetCore(nn.Module):
    """U-Net: ``depth`` average-pool down-samplings, nearest up-sampling, skip concatenation.

    The grid is padded (replicate) to a multiple of ``2**depth`` and cropped back.
    """

    def __init__(
        self, cin: int, cout: int, grid: tuple[int, int], width: int, depth: int, b: Builder
    ):
        super().__init__()
        h, w = grid
        m = 2**depth
        self.pad_hw = ((-h) % m, (-w) % m)
        self.grid = grid
        chans = [width * 2**i for i in range(depth + 1)]
        self.enc = nn.ModuleList(
            [
                b.block(f"enc.{i}", cin if i == 0 else chans[i - 1], chans[i])
                for i in range(depth + 1)
            ]
        )
        self.dec = nn.ModuleList(
            [b.block(f"dec.{i}", chans[i + 1] + chans[i], chans[i]) for i in range(depth)]
        )
        self.head = b.conv("head", chans[0], cout, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.pad_hw
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = []
        for i, enc in enumerate(self.enc):
            if i > 0:
                x = F.avg_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        for i in reversed(range(len(self.dec))):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = self.dec[i](torch.cat([x, skips[i]], dim=1))
        x = self.head(x)
        if ph or pw:
            h, w = self.grid
            x = x[..., :h, :w]
        return x


class ResNetCore(nn.Module):
    """Residual CNN at full resolution: stem, ``depth`` residual conv blocks, 1 x 1 head."""

    def __init__(self, cin: int, cout: int, width: int, depth: int, b: Builder):
        super().__init__()
        self.stem = b.conv("stem", cin, width)
        self.act = b.act()
        self.blocks = nn.ModuleList([b.block(f"blocks.{i}", width, width) for i in range(depth)])
        self.head = b.conv("head", width, cout, k=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.stem(x))

    def step(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Residual block ``i``: features to features of the same shape."""
        return x + self.blocks[i](x)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for i in range(len(self.blocks)):
            x = self.step(i, x)
        return self.readout(x)


class EnsembleCore(nn.Module):
    """The mean of several cores' outputs: an ensemble of independently trained members
    (different seeds) that is still one network and one ONNX graph."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out / len(self.members)


def build_core(
    arch: str,
    *,
    cin: int,
    cout: int,
    grid: tuple[int, int],
    width: int,
    depth: int,
    padding: str,
    activation: str,
    overrides: Mapping[str, Mapping] | None = None,
    dropout: float = 0.0,
    members: int = 1,
    heads: int = 4,
    patch: int = 2,
    window: int = 0,
    mlp_ratio: float = 2.0,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build a core, applying architecture ``overrides`` (see :class:`Builder`); with
    ``members > 1`` an :class:`EnsembleCore` (override names start ``members.<k>.``). An
    ``arch`` that is not built in is a plug-in (:mod:`wxmodels.nets.plugins`), called with
    ``options``."""
    b = Builder(padding, activation, overrides, dropout)

    def one(k: int) -> nn.Module:
        if arch == "unet":
            return UNetCore(cin, cout, grid, width, depth, b)
        if arch == "resnet":
            return ResNetCore(cin, cout, width, depth, b)
        if arch == "transformer":
            return TransformerCore(
                cin, cout, grid, width, depth, heads, patch, window, mlp_ratio, b
            )
        prefix = f"members.{k}." if members > 1 else ""
        mine = {f[len(prefix) :]: o for f, o in (overrides or {}).items() if f.startswith(prefix)}
        b.used.update(prefix + f for f in mine)
        return build_plugin(
            arch,
            cin=cin,
            cout=cout,
            grid=grid,
            width=width,
            depth=depth,
            options=options or {},
            overrides=mine,
        )

    if members == 1:
        core = one(0)
    else:
        parts = []
        for k in range(members):
            b.prefix = f"members.{k}."
            parts.append(one(k))
        core = EnsembleCore(parts)
    b.check_all_used()
    return core
