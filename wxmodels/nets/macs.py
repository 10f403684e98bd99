"""Multiply-accumulate count of one forecaster step: convolutions, linear layers and
attention's products."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wxmodels.nets.forecaster import Forecaster
from wxmodels.nets.transformer import Attention

__all__ = ["count_macs"]


@torch.no_grad()
def count_macs(model: Forecaster) -> dict[str, int]:
    """``{"dense": MACs, "nonzero": MACs with zero weights skipped}`` for one sample and one
    step, from the layers' output sizes (a forward pass with hooks)."""
    counts = {"dense": 0, "nonzero": 0}

    def hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        per_out = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        positions = out.shape[-2] * out.shape[-1]
        counts["dense"] += int(out.shape[1] * positions * per_out)
        counts["nonzero"] += int(positions * torch.count_nonzero(mod.weight))

    def linear(mod: nn.Linear, _inp, out: torch.Tensor) -> None:
        rows = out.numel() // out.shape[-1]
        counts["dense"] += int(rows * mod.in_features * mod.out_features)
        counts["nonzero"] += int(rows * torch.count_nonzero(mod.weight))

    def attention(mod: Attention, inp, _out) -> None:
        # q k^T and the weighted sum of v: two products of (tokens x tokens x head_dim) a head
        x = inp[0]
        b, n = x.shape[:2]
        m = mod.window**2 if mod.window else n
        macs = 2 * b * n * m * mod.heads * mod.head_dim
        counts["dense"] += macs
        counts["nonzero"] += macs

    hooks: dict[type, Any] = {nn.Conv2d: hook, nn.Linear: linear, Attention: attention}
    handles = [
        m.register_forward_hook(fn)
        for m in model.modules()
        for kind, fn in hooks.items()
        if isinstance(m, kind)
    ]
    try:
        nv = len(model.spec.variables)
        h, w = model.spec.grid
        state = torch.zeros(1, model.history, nv, h, w)
        clim = torch.zeros(1, model.history + 1, nv, h, w) if model.climatology else None
        was = model.training
        model.eval()
        model(state, torch.zeros(1), clim)
        model.train(was)
    finally:
        for hd in handles:
            hd.remove()
    return counts
