"""Low-rank factorisation: a k x k conv (cin -> cout) becomes k x k (cin -> r) then 1 x 1
(r -> cout) from the truncated SVD of its weight matrix ``(cout, cin k k)``, then fine-tuning."""

from __future__ import annotations

import math

import torch
from torch import nn

from wxmodels.compress.common import CompressContext, FilterFn, conv_modules
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import LowRankConfig
from wxmodels.nets.forecaster import Forecaster
from wxmodels.nets.layers import LowRankConv2d

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
    for fqn, unit in list(conv_modules(model, filter_fn)):
        conv = unit.conv
        if not isinstance(conv, nn.Conv2d):
            continue
        cout, cin, kh, kw = conv.weight.shape
        mat = conv.weight.detach().reshape(cout, cin * kh * kw).double()
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        r = choose_rank(s, config)
        if r * (cin * kh * kw + cout) >= cout * cin * kh * kw:
            continue  # factorising would not save parameters
        root = torch.sqrt(s[:r])
        lr = LowRankConv2d(cin, cout, kh, r, bias=conv.bias is not None)
        with torch.no_grad():
            lr.first.weight.copy_((root[:, None] * vh[:r]).reshape(r, cin, kh, kw).float())
            lr.second.weight.copy_((u[:, :r] * root[None]).reshape(cout, r, 1, 1).float())
            if conv.bias is not None and lr.second.bias is not None:
                lr.second.bias.copy_(conv.bias)
        unit.conv = lr
        model.spec.overrides[fqn] = {**model.spec.overrides.get(fqn, {}), "rank": r}
        changed += 1
    if not changed:
        raise ValueError("lowrank: no layer would shrink at this rank; lower `ratio`/`energy`")
    if config.finetune_epochs:
        ctx.finetune(model, epochs=config.finetune_epochs, desc="lowrank")
    return model


register_method(Method("lowrank", LowRankConfig, "torch", apply))
