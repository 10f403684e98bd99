"""Building blocks shared by the cores: domain-aware padding, conv blocks, low-rank convs and
linears.

Every conv and linear is created by a :class:`Builder` that consults *overrides*
(``{fqn: {...}}``), so that a compressed network (fewer channels or heads, factorised layers) can
be rebuilt from its JSON spec alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ACTIVATIONS",
    "Builder",
    "ConvBlock",
    "DomainPad",
    "LowRankConv2d",
    "LowRankLinear",
    "PaddedConv",
]

ACTIVATIONS: Mapping[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


class DomainPad(nn.Module):
    """Pad by ``p`` cells: periodic or reflective in longitude, reflective in latitude.

    Shapes: ``(B, C, H, W) -> (B, C, H + 2p, W + 2p)``.
    """

    def __init__(self, p: int, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0:
            return x
        p = self.p
        if self.mode == "periodic":
            x = torch.cat([x[..., -p:], x, x[..., :p]], dim=-1)
            return F.pad(x, (0, 0, p, p), mode="replicate")
        if self.mode == "reflect":
            return F.pad(x, (p, p, p, p), mode="reflect")
        return F.pad(x, (p, p, p, p))

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class LowRankConv2d(nn.Module):
    """A k x k conv factorised through ``rank`` channels: k x k (cin -> rank), then 1 x 1
    (rank -> cout). Same input and output shapes as the conv it replaces."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int | tuple[int, int],
        rank: int,
        bias: bool = True,
        **conv: Any,
    ):
        super().__init__()
        # stride, padding, dilation of a plug-in core's conv stay on the k x k factor
        self.first = nn.Conv2d(cin, rank, k, bias=False, **conv)
        self.second = nn.Conv2d(rank, cout, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class LowRankLinear(nn.Module):
    """A linear map factorised through ``rank`` features: ``second(first(x))``, ``first``
    without bias. Same input and output shapes as the linear it replaces."""

    def __init__(self, cin: int, cout: int, rank: int, bias: bool = True):
        super().__init__()
        self.first = nn.Linear(cin, rank, bias=False)
        self.second = nn.Linear(rank, cout, bias=bias)

    @property
    def in_features(self) -> int:
        return self.first.in_features

    @property
    def out_features(self) -> int:
        return self.second.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class PaddedConv(nn.Module):
    """Domain padding then a conv without padding: the unit that compression methods transform.

    ``conv`` is an ``nn.Conv2d`` or a :class:`LowRankConv2d`; its fqn is the override key.
    """

    def __init__(self, pad: DomainPad, conv: nn.Module):
        super().__init__()
        self.pad = pad
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class Builder:
    """Creates convs and blocks under their fully qualified names, applying overrides.

    Overrides (all optional), keyed by the module's fqn inside the core:
    ``{"rank": r}`` on a conv: build a :class:`LowRankConv2d`;
    ``{"mid": c}`` on a :class:`ConvBlock` or a transformer MLP: its inner width (structured
    pruning); ``{"heads": n}`` on an attention layer: the heads it keeps.
    """

    def __init__(
        self,
        padding: str,
        activation: str,
        overrides: Mapping[str, Mapping] | None,
        dropout: float = 0.0,
    ):
        self.padding = padding
        self.activation = activation
        self.dropout = dropout
        self.overrides = dict(overrides or {})
        self.used: set[str] = set()
        self.prefix = ""  # "members.<k>." while building one member of an ensemble core

    def get(self, fqn: str) -> Mapping:
        key = self.prefix + fqn
        if key in self.overrides:
            self.used.add(key)
        return self.overrides.get(key, {})

    def conv(self, fqn: str, cin: int, cout: int, k: int = 3) -> PaddedConv:
        rank = self.get(fqn).get("rank")
        conv = LowRankConv2d(cin, cout, k, int(rank)) if rank else nn.Conv2d(cin, cout, k)
        return PaddedConv(DomainPad(k // 2, self.padding), conv)

    def linear(self, fqn: str, cin: int, cout: int, bias: bool = True) -> nn.Module:
        """``nn.Linear``, or a :class:`LowRankLinear` where an override gives a ``rank``."""
        rank = self.get(fqn).get("rank")
        return LowRankLinear(cin, cout, int(rank), bias) if rank else nn.Linear(cin, cout, bias)

    def act(self) -> nn.Module:
        return ACTIVATIONS[self.activation]()

    def block(self, fqn: str, cin: int, cout: int) -> ConvBlock:
        mid = int(self.get(fqn).get("mid", cout))
        return ConvBlock(fqn, cin, mid, cout, self)

    def check_all_used(self) -> None:
        unused = set(self.overrides) - self.used
        if unused:
            raise ValueError(f"architecture overrides name unknown layers: {sorted(unused)}")


class ConvBlock(nn.Module):
    """conv(cin -> mid) - act - conv(mid -> cout) - act. ``(B, cin, H, W) -> (B, cout, H, W)``.

    The inner width ``mid`` can shrink (structured pruning) without touching any other layer.
    """

    def __init__(self, fqn: str, cin: int, mid: int, cout: int, b: Builder):
        super().__init__()
        self.conv1 = b.conv(f"{fqn}.conv1", cin, mid)
        self.act1 = b.act()
        self.drop = nn.Dropout2d(b.dropout) if b.dropout > 0 else nn.Identity()
        self.conv2 = b.conv(f"{fqn}.conv2", mid, cout)
        self.act2 = b.act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.conv2(self.drop(self.act1(self.conv1(x)))))
