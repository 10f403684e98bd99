"""Depth distillation (after FuXi, which cut 48 transformer blocks to 6): a student with fewer
blocks, each standing for a contiguous group of the teacher's blocks.

1. The student is the teacher with ``depth`` blocks: everything but the blocks (embedding,
   readout, linear path, damping) is the teacher's, and student block ``j`` starts as one block
   of group ``j`` (``init``).
2. Block-wise: each student block is trained alone to map the teacher's features at its
   group's input to the teacher's features at its group's output (MSE relative to the
   features' variance), all groups at once from the same batches.
3. End to end: the shared loop fine-tunes the whole student against
   ``alpha * truth + (1 - alpha) * teacher`` (output distillation, rollouts optional).

It needs a core that is a stack of blocks with ``embed(x)``, ``step(i, h)``, ``readout(h)``
and ``blocks``: the transformer and the ResNet here, or a plug-in that provides them.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from wxmodels.compress.common import CompressContext, FilterFn
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import DepthConfig
from wxmodels.nets.forecaster import Forecaster
from wxmodels.training.loop import Batches

__all__ = ["DepthConfig", "apply", "groups"]


def groups(teacher_depth: int, student_depth: int) -> list[list[int]]:
    """The teacher's blocks in ``student_depth`` contiguous groups, as even as they go."""
    return [g.tolist() for g in np.array_split(np.arange(teacher_depth), student_depth)]


def _stack(model: Forecaster) -> Any:
    core = model.core
    if model.members > 1 or not all(
        hasattr(core, a) for a in ("blocks", "embed", "step", "readout")
    ):
        raise ValueError(
            "depth: the teacher's core is not a stack of blocks (transformer, resnet, or a "
            "plug-in with blocks/embed/step/readout; not an ensemble)"
        )
    return core


def apply(
    model: Forecaster,
    config: DepthConfig,
    *,
    ctx: CompressContext,
    filter_fn: FilterFn | None = None,
) -> Forecaster:
    """Return a new, trained student; ``model`` acts as the teacher and is not changed."""
    core = _stack(model)
    n_t = len(core.blocks)
    if config.depth >= n_t:
        raise ValueError(f"depth: the student's {config.depth} blocks are not fewer than {n_t}")
    parts = groups(n_t, config.depth)
    source = [g[0] if config.init == "first" else g[-1] for g in parts]
    spec = copy.deepcopy(model.spec)
    spec.net = {**spec.net, "depth": config.depth}
    overrides = {k: v for k, v in spec.overrides.items() if not k.startswith("blocks.")}
    for j, t in enumerate(source):
        pre = f"blocks.{t}."
        overrides.update(
            {
                f"blocks.{j}.{k[len(pre) :]}": v
                for k, v in spec.overrides.items()
                if k.startswith(pre)
            }
        )
    spec.overrides = overrides
    student = Forecaster(
        spec, valid=model.valid.view(spec.grid).numpy(), statics=model.statics[0].numpy()
    )
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("core.blocks.")}
    for j, t in enumerate(source):
        state.update({f"core.blocks.{j}.{k}": v for k, v in core.blocks[t].state_dict().items()})
    student.load_state_dict(state, strict=True)
    if config.block_epochs:
        _blockwise(model, student, parts, config, ctx)
    if config.epochs or config.rollout_epochs:
        ctx.finetune(
            student,
            epochs=config.epochs,
            rollout_epochs=config.rollout_epochs,
            rollout_steps=config.rollout_steps,
            lr=config.lr or ctx.train.lr,
            teacher=model,
            alpha=config.alpha,
            desc="depth",
        )
    return student


def _blockwise(
    teacher: Forecaster,
    student: Forecaster,
    parts: list[list[int]],
    config: DepthConfig,
    ctx: CompressContext,
) -> None:
    """Train each student block on the teacher's features at its group's ends."""
    teacher = teacher.eval()
    tcore, score = teacher.core, student.core
    params = [p for p in score.blocks.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr or ctx.train.lr)
    inits = ctx.inits("train", teacher.history, 1)
    batches = Batches(ctx.fields, teacher.history, torch.device("cpu"), ctx.clim_all)
    rng = np.random.default_rng(ctx.seed)
    size, per_epoch = ctx.train.batch_size, ctx.train.samples_per_epoch
    t0 = time.perf_counter()
    student.train()
    for _ in range(config.block_epochs):
        order = rng.permutation(inits)[: per_epoch or None]
        for k in range(0, len(order), size):
            state, tm, clim, _ = batches.get(order[k : k + size], 1)
            with torch.no_grad():
                h = tcore.embed(teacher.inputs(state, tm, clim))
                feats = [h]
                for i in range(len(tcore.blocks)):
                    h = tcore.step(i, h)
                    feats.append(h)
            loss = torch.zeros(())
            for j, g in enumerate(parts):
                target = feats[g[-1] + 1]
                pred = score.step(j, feats[g[0]])
                loss = loss + (pred - target).pow(2).mean() / target.var().clamp_min(1e-8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if time.perf_counter() - t0 > ctx.max_minutes * 60:
                return


register_method(Method("depth", DepthConfig, "torch", apply))
