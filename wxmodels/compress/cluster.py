"""k-means weight clustering (weight sharing, Deep Compression): each layer's weights take one of
``2**bits`` centroid values; the centroids are then fine-tuned (the gradient of a centroid is the
sum over the weights that share it). Stored as b-bit indices + codebook (``compress.packing``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from wxmodels.compress.common import CompressContext, FilterFn, leaf_layers, weight_layers
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import ClusterConfig
from wxmodels.nets.forecaster import Forecaster

__all__ = ["ClusterConfig", "apply", "kmeans_1d"]


def kmeans_1d(w: torch.Tensor, k: int, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on the flattened values of ``w`` with linear initialisation between
    min and max (the initialisation Deep Compression found best). Returns
    ``(centroids (k,), indices (w.shape) int64)``."""
    x = w.detach().flatten().double()
    c = torch.linspace(float(x.min()), float(x.max()), k, dtype=x.dtype)
    for _ in range(iterations):
        idx = torch.argmin((x[:, None] - c[None]).abs(), dim=1)
        sums = torch.zeros_like(c).index_add_(0, idx, x)
        counts = torch.zeros_like(c).index_add_(0, idx, torch.ones_like(x))
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c)
    idx = torch.argmin((x[:, None] - c[None]).abs(), dim=1)
    return c.float(), idx.reshape(w.shape)


class _Shared(nn.Module):
    """Parametrisation ``weight = centroids[indices]`` (centroids trainable)."""

    def __init__(self, centroids: torch.Tensor, indices: torch.Tensor):
        super().__init__()
        self.centroids = nn.Parameter(centroids)
        self.indices: torch.Tensor
        self.register_buffer("indices", indices)

    def forward(self, _w: torch.Tensor) -> torch.Tensor:
        return self.centroids[self.indices]


def apply(
    model: Forecaster,
    config: ClusterConfig,
    *,
    ctx: CompressContext,
    filter_fn: FilterFn | None = None,
) -> Forecaster:
    convs: list[nn.Module] = [
        layer for _, unit in weight_layers(model, filter_fn) for layer in leaf_layers(unit)
    ]
    k = 2**config.bits
    for conv in convs:
        weight = conv.weight
        if not isinstance(weight, torch.Tensor) or weight.numel() <= k:
            continue
        c, idx = kmeans_1d(weight, k, config.iterations)
        parametrize.register_parametrization(conv, "weight", _Shared(c, idx), unsafe=True)
    if config.finetune_epochs:
        # only centroids and biases train; the assignment stays fixed
        for name, p in model.named_parameters():
            p.requires_grad = name.endswith("centroids") or name.endswith("bias")
        ctx.finetune(model, epochs=config.finetune_epochs, desc="cluster")
        for p in model.parameters():
            p.requires_grad = True
    for conv in convs:
        if parametrize.is_parametrized(conv, "weight"):
            parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
    return model


register_method(Method("cluster", ClusterConfig, "torch", apply))
