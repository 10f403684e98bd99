"""Structured pruning: remove the inner channels of each conv block with the smallest filter
norms (Li et al., 2017), physically, so the exported network is smaller and faster."""

from __future__ import annotations

import math

import torch
from torch import nn

from wxmodels.compress.common import CompressContext, FilterFn, conv_blocks
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import StructuredConfig
from wxmodels.nets.forecaster import Forecaster

__all__ = ["StructuredConfig", "apply"]


def apply(
    model: Forecaster,
    config: StructuredConfig,
    *,
    ctx: CompressContext,
    filter_fn: FilterFn | None = None,
) -> Forecaster:
    changed = 0
    for fqn, block in list(conv_blocks(model, filter_fn)):
        c1, c2 = block.conv1.conv, block.conv2.conv
        if not (isinstance(c1, nn.Conv2d) and isinstance(c2, nn.Conv2d)):
            continue  # already factorised: leave it
        mid = c1.out_channels
        keep_n = max(1, math.ceil(mid * (1 - config.amount)))
        if keep_n >= mid:
            continue
        p = 1 if config.criterion == "l1" else 2
        norms = c1.weight.detach().flatten(1).norm(p=p, dim=1)
        keep = torch.sort(torch.topk(norms, keep_n).indices).values
        k1, k2 = c1.kernel_size, c2.kernel_size
        n1 = nn.Conv2d(c1.in_channels, keep_n, (k1[0], k1[1]), bias=c1.bias is not None)
        n2 = nn.Conv2d(keep_n, c2.out_channels, (k2[0], k2[1]), bias=c2.bias is not None)
        with torch.no_grad():
            n1.weight.copy_(c1.weight[keep])
            if c1.bias is not None and n1.bias is not None:
                n1.bias.copy_(c1.bias[keep])
            n2.weight.copy_(c2.weight[:, keep])
            if c2.bias is not None and n2.bias is not None:
                n2.bias.copy_(c2.bias)
        block.conv1.conv, block.conv2.conv = n1, n2
        model.spec.overrides[fqn] = {**model.spec.overrides.get(fqn, {}), "mid": keep_n}
        changed += 1
    if not changed:
        raise ValueError("structured: no conv block could be pruned")
    if config.finetune_epochs:
        ctx.finetune(model, epochs=config.finetune_epochs, desc="structured")
    return model


register_method(Method("structured", StructuredConfig, "torch", apply))
