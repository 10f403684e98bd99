"""Structured pruning: remove whole parts with the smallest weight norms (Li et al., 2017),
physically, so the exported network is smaller and faster: the inner channels of each conv
block; the heads of each attention layer (Michel et al., 2019) and the inner channels of each
transformer MLP."""

from __future__ import annotations

import math

import torch
from torch import nn

from wxmodels.compress.common import CompressContext, FilterFn
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import StructuredConfig
from wxmodels.nets.forecaster import Forecaster
from wxmodels.nets.layers import ConvBlock
from wxmodels.nets.transformer import Attention, Mlp

__all__ = ["StructuredConfig", "apply"]


def _keep(norms: torch.Tensor, amount: float) -> torch.Tensor | None:
    """Sorted indices of the ``1 - amount`` largest ``norms`` (None when nothing would go)."""
    n = len(norms)
    keep_n = max(1, math.ceil(n * (1 - amount)))
    if keep_n >= n:
        return None
    return torch.sort(torch.topk(norms, keep_n).indices).values


def _linear(src: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None) -> nn.Linear:
    """A new ``Linear`` holding the ``rows`` (outputs) and ``cols`` (inputs) of ``src``."""
    w = src.weight.detach()
    if rows is not None:
        w = w[rows]
    if cols is not None:
        w = w[:, cols]
    out = nn.Linear(w.shape[1], w.shape[0], bias=src.bias is not None)
    with torch.no_grad():
        out.weight.copy_(w)
        if src.bias is not None and out.bias is not None:
            out.bias.copy_(src.bias.detach() if rows is None else src.bias.detach()[rows])
    return out


def _conv_block(block: ConvBlock, config: StructuredConfig) -> int | None:
    c1, c2 = block.conv1.conv, block.conv2.conv
    if not (isinstance(c1, nn.Conv2d) and isinstance(c2, nn.Conv2d)):
        return None  # already factorised: leave it
    p = 1 if config.criterion == "l1" else 2
    keep = _keep(c1.weight.detach().flatten(1).norm(p=p, dim=1), config.amount)
    if keep is None:
        return None
    k1, k2 = c1.kernel_size, c2.kernel_size
    n1 = nn.Conv2d(c1.in_channels, len(keep), (k1[0], k1[1]), bias=c1.bias is not None)
    n2 = nn.Conv2d(len(keep), c2.out_channels, (k2[0], k2[1]), bias=c2.bias is not None)
    with torch.no_grad():
        n1.weight.copy_(c1.weight[keep])
        if c1.bias is not None and n1.bias is not None:
            n1.bias.copy_(c1.bias[keep])
        n2.weight.copy_(c2.weight[:, keep])
        if c2.bias is not None and n2.bias is not None:
            n2.bias.copy_(c2.bias)
    block.conv1.conv, block.conv2.conv = n1, n2
    return len(keep)


def _heads(attn: Attention, config: StructuredConfig) -> int | None:
    """Remove whole heads: a head's score is the norm of its query, key and value rows and of
    its columns of the output projection."""
    if not (isinstance(attn.qkv, nn.Linear) and isinstance(attn.proj, nn.Linear)):
        return None
    h, d = attn.heads, attn.head_dim
    p = 1 if config.criterion == "l1" else 2
    qkv = attn.qkv.weight.detach().view(3, h, d, -1)
    proj = attn.proj.weight.detach().view(-1, h, d)
    norms = qkv.permute(1, 0, 2, 3).reshape(h, -1).norm(p=p, dim=1) + proj.permute(1, 0, 2).reshape(
        h, -1
    ).norm(p=p, dim=1)
    keep = _keep(norms, config.amount)
    if keep is None:
        return None
    rows = torch.arange(3)[:, None, None] * h * d + keep[None, :, None] * d + torch.arange(d)
    cols = (keep[:, None] * d + torch.arange(d)).flatten()
    attn.qkv = _linear(attn.qkv, rows.flatten(), None)
    attn.proj = _linear(attn.proj, None, cols)
    attn.heads = len(keep)
    return len(keep)


def _mlp(mlp: Mlp, config: StructuredConfig) -> int | None:
    if not (isinstance(mlp.fc1, nn.Linear) and isinstance(mlp.fc2, nn.Linear)):
        return None
    p = 1 if config.criterion == "l1" else 2
    norms = mlp.fc1.weight.detach().norm(p=p, dim=1) + mlp.fc2.weight.detach().norm(p=p, dim=0)
    keep = _keep(norms, config.amount)
    if keep is None:
        return None
    mlp.fc1, mlp.fc2 = _linear(mlp.fc1, keep, None), _linear(mlp.fc2, None, keep)
    return len(keep)


def apply(
    model: Forecaster,
    config: StructuredConfig,
    *,
    ctx: CompressContext,
    filter_fn: FilterFn | None = None,
) -> Forecaster:
    changed = 0
    for fqn, m in list(model.core.named_modules()):
        if filter_fn is not None and not filter_fn(m, fqn):
            continue
        if isinstance(m, ConvBlock):
            n, key = _conv_block(m, config), "mid"
        elif isinstance(m, Attention):
            n, key = _heads(m, config), "heads"
        elif isinstance(m, Mlp):
            n, key = _mlp(m, config), "mid"
        else:
            continue
        if n is not None:
            model.spec.overrides[fqn] = {**model.spec.overrides.get(fqn, {}), key: n}
            changed += 1
    if not changed:
        raise ValueError(
            "structured: no conv block, attention layer or MLP could be pruned (a plug-in "
            "core declares none: use prune, lowrank or distill on it)"
        )
    if config.finetune_epochs:
        ctx.finetune(model, epochs=config.finetune_epochs, desc="structured")
    return model


register_method(Method("structured", StructuredConfig, "torch", apply))
