"""Unstructured L1 magnitude pruning of the core's conv and linear weights, with a sparsity
schedule and fine-tuning.

Sparsity alone does not shrink a dense ONNX file nor speed it up; the deployable size is the
sparse-encoded artifact (see :mod:`wxmodels.export.packing`).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune as tprune

from wxmodels.compress.common import CompressContext, FilterFn, leaf_layers, weight_layers
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import PruneConfig
from wxmodels.nets.forecaster import Forecaster

__all__ = ["PruneConfig", "apply"]


def _weights(model: Forecaster, filter_fn: FilterFn | None) -> list[tuple[nn.Module, str]]:
    return [
        (layer, "weight")
        for _, unit in weight_layers(model, filter_fn)
        for layer in leaf_layers(unit)
    ]


def apply(
    model: Forecaster,
    config: PruneConfig,
    *,
    ctx: CompressContext,
    filter_fn: FilterFn | None = None,
) -> Forecaster:
    params = _weights(model, filter_fn)
    if not params:
        raise ValueError("prune: filter_fn selected no weight layer")
    done = 0.0
    for s in range(config.steps):
        target = config.amount * (1 - (1 - (s + 1) / config.steps) ** 3)
        step_amount = (target - done) / (1 - done)
        if config.scope == "global":
            tprune.global_unstructured(
                params, pruning_method=tprune.L1Unstructured, amount=step_amount
            )
        else:
            for mod, name in params:
                tprune.l1_unstructured(mod, name, amount=step_amount)
        done = target
        if config.finetune_epochs:
            ctx.finetune(model, epochs=config.finetune_epochs, desc=f"prune {s + 1}")
    for mod, name in params:
        tprune.remove(mod, name)
    return model


register_method(Method("prune", PruneConfig, "torch", apply))
