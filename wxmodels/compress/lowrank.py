"""Low-rank factorisation: a k x k conv (cin -> cout) becomes k x k (cin -> r) then 1 x 1
(r -> cout) from the truncated SVD of its weight matrix ``(cout, cin k k)``, a linear layer
(cin -> cout) two linears through r features; then fine-tuning."""

from __future__ import annotations

import math

import torch
from torch import nn

from wxmodels.compress.common import CompressContext, FilterFn, weight_layers
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import LowRankConfig
from wxmodels.nets.forecaster import Forecaster
from wxmodels.nets.layers import PaddedConv
from wxmodels.nets.plugins import low_rank_of

__all__ = ["LowRankConfig", "apply", "choose_rank"]


def choose_rank(s: torch.Tensor, config: LowRankConfig) -> int:
    """Rank from singular values ``s`` (descending) by energy or ratio, at least ``min_rank``."""
    if config.energy is not None:
        e = torch.cumsum(s**2, 0) / (s**2).sum()
        r = int(torch.searchsorted(e, torch.tensor(config.energy, dtype=e.dtype)).item()) + 1
    elif config.ratio is not None:
        r = math.ceil(config.ratio * len(s))
    else:
        raise ValueError("lowrank needs `energy` or `ratio`")
    return max(config.min_rank, min(r, len(s)))


def apply(
    model: Forecaster,
    config: LowRankConfig,
    *,
    ctx: CompressContext,
    filter_fn: FilterFn | None = None,
) -> Forecaster:
    changed = 0
    for fqn, unit in list(weight_layers(model, filter_fn)):
        layer = unit.conv if isinstance(unit, PaddedConv) else unit
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            continue  # already factorised
        w = layer.weight.detach()
        cout, fan_in = w.shape[0], w[0].numel()
        u, s, vh = torch.linalg.svd(w.reshape(cout, fan_in).double(), full_matrices=False)
        r = choose_rank(s, config)
        if r * (fan_in + cout) >= cout * fan_in:
            continue  # factorising would not save parameters
        root = torch.sqrt(s[:r])
        lr = low_rank_of(layer, r)
        with torch.no_grad():
            lr.first.weight.copy_((root[:, None] * vh[:r]).reshape(lr.first.weight.shape).float())
            lr.second.weight.copy_((u[:, :r] * root[None]).reshape(lr.second.weight.shape).float())
            if layer.bias is not None and lr.second.bias is not None:
                lr.second.bias.copy_(layer.bias)
        if isinstance(unit, PaddedConv):
            unit.conv = lr
        else:
            parent, _, leaf = fqn.rpartition(".")
            setattr(model.core.get_submodule(parent) if parent else model.core, leaf, lr)
        model.spec.overrides[fqn] = {**model.spec.overrides.get(fqn, {}), "rank": r}
        changed += 1
    if not changed:
        raise ValueError("lowrank: no layer would shrink at this rank; lower `ratio`/`energy`")
    if config.finetune_epochs:
        ctx.finetune(model, epochs=config.finetune_epochs, desc="lowrank")
    return model


register_method(Method("lowrank", LowRankConfig, "torch", apply))
