"""Knowledge distillation into a smaller student; the loss mixes the truth and the teacher's
forecasts over the whole rollout."""

from __future__ import annotations

import copy

import torch

from wxmodels.compress.common import CompressContext, FilterFn
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import DistillConfig
from wxmodels.nets.forecaster import Forecaster

__all__ = ["DistillConfig", "apply"]


def apply(
    model: Forecaster,
    config: DistillConfig,
    *,
    ctx: CompressContext,
    filter_fn: FilterFn | None = None,
) -> Forecaster:
    """Return a new, trained student; ``model`` acts as the teacher and is not changed."""
    spec = copy.deepcopy(model.spec)
    spec.net = {
        **spec.net,
        "arch": config.arch,
        "width": config.width,
        "depth": config.depth,
        "activation": config.activation,
        "history": config.history or spec.net.get("history", 1),
        "members": 1,
    }
    if config.padding is not None:
        spec.net["padding"] = config.padding
    spec.overrides = {}
    student = Forecaster(
        spec, valid=model.valid.view(spec.grid).numpy(), statics=model.statics[0].numpy()
    )
    _inherit_linear_path(student, model)
    ctx.finetune(
        student,
        epochs=config.epochs,
        rollout_epochs=config.rollout_epochs,
        rollout_steps=config.rollout_steps,
        lr=config.lr or ctx.train.lr,
        teacher=model,
        alpha=config.alpha,
        desc="distill",
    )
    return student


def _same_shapes(a: torch.nn.Module | None, b: torch.nn.Module | None) -> bool:
    if a is None or b is None:
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


def _inherit_linear_path(student: Forecaster, teacher: Forecaster) -> None:
    """Start the student at the teacher's linear part (its pointwise and spatial linear paths
    and damping, with the student's core output zeroed): distillation then only transfers
    what is nonlinear."""
    if student.skip is None or teacher.skip is None:
        return
    if student.skip.weight.shape != teacher.skip.weight.shape:
        return
    with torch.no_grad():
        student.skip.load_state_dict(teacher.skip.state_dict())
        if _same_shapes(student.spatial, teacher.spatial):
            assert student.spatial is not None
            assert teacher.spatial is not None
            student.spatial.load_state_dict(teacher.spatial.state_dict())
        if student.climatology and teacher.climatology:
            student.damping_logit.copy_(teacher.damping_logit)
        head = getattr(student.core, "head", None)
        for p in head.parameters() if head is not None else []:
            torch.nn.init.zeros_(p)


register_method(Method("distill", DistillConfig, "torch", apply))
