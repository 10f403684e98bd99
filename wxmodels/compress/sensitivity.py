"""Per-layer sensitivity: how much the validation loss rises when one layer alone is damaged.

Each weight layer of the core (conv or linear) is, in turn, magnitude-pruned by ``amount``
(its smallest weights set to zero) with every other layer intact, and the one-step validation
loss is compared with the intact model's. Layers whose damage costs most are the ones a cell may
leave alone (``CellConfig.protect``): the methods then get a ``filter_fn`` that skips them.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from wxmodels.compress.common import CompressContext, FilterFn, weight_layers
from wxmodels.geometry import lat_weights_np
from wxmodels.nets.forecaster import Forecaster
from wxmodels.nets.rollout import rollout
from wxmodels.training.loop import Batches, masked_loss

__all__ = ["layer_sensitivity", "protect_filter"]


@torch.no_grad()
def _val_loss(
    model: Forecaster, ctx: CompressContext, inits: np.ndarray, batches: Batches
) -> float:
    std = torch.tensor(model.spec.std, dtype=torch.float32)
    weights = torch.from_numpy(lat_weights_np(ctx.fields.lat)).float().view(-1, 1)
    tot, n = 0.0, 0
    for k in range(0, len(inits), 64):
        idx = inits[k : k + 64]
        state, tm, clim, truth = batches.get(idx, 1)
        pred = rollout(model, state, tm, 1, model.spec.step_hours, clim)
        tot += float(masked_loss(pred, truth, std, weights)) * len(idx)
        n += len(idx)
    return tot / max(n, 1)


@torch.no_grad()
def layer_sensitivity(
    model: Forecaster, ctx: CompressContext, *, amount: float = 0.5, max_inits: int = 256
) -> dict[str, float]:
    """``{fqn: relative rise of the validation loss}`` for each weight layer of the core, when that
    layer alone loses the ``amount`` fraction of its smallest weights."""
    model = copy.deepcopy(model).eval()
    inits = ctx.inits("val", model.history, 1)[:max_inits]
    batches = Batches(ctx.fields, model.history, torch.device("cpu"), ctx.clim_all)
    base = _val_loss(model, ctx, inits, batches)
    out = {}
    for fqn, unit in weight_layers(model):
        params = [p for n, p in unit.named_parameters() if n.endswith("weight")]
        saved = [p.detach().clone() for p in params]
        for p in params:
            k = int(amount * p.numel())
            if k:
                thr = p.abs().flatten().kthvalue(k).values
                p.masked_fill_(p.abs() <= thr, 0.0)
        out[fqn] = (_val_loss(model, ctx, inits, batches) - base) / max(base, 1e-12)
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return out


def protect_filter(sensitivity: dict[str, float], n: int) -> tuple[FilterFn | None, list[str]]:
    """A ``filter_fn`` that skips the ``n`` most sensitive layers, and their names."""
    if n <= 0:
        return None, []
    protected = sorted(sensitivity, key=lambda f: -sensitivity[f])[:n]
    keep = set(protected)
    return (lambda _m, fqn: fqn not in keep), protected
