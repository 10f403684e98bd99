"""Multiply-accumulate count of one forecaster step (convolutions, which dominate)."""

from __future__ import annotations

import torch
from torch import nn

from wxmodels.nets.forecaster import Forecaster

__all__ = ["count_macs"]


@torch.no_grad()
def count_macs(model: Forecaster) -> dict[str, int]:
    """``{"dense": MACs, "nonzero": MACs with zero weights skipped}`` for one sample and one
    step, from the convolutions' output sizes (a forward pass with hooks)."""
    counts = {"dense": 0, "nonzero": 0}

    def hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        per_out = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        positions = out.shape[-2] * out.shape[-1]
        counts["dense"] += int(out.shape[1] * positions * per_out)
        counts["nonzero"] += int(positions * torch.count_nonzero(mod.weight))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
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
