"""The one training loop: one-step epochs, then rollout fine-tuning, with early stopping.

Used for the teacher, for fine-tuning compressed models, and (with a ``teacher``) for
knowledge distillation: the loss then mixes the truth and the teacher's own rollout.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing as mp
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from wxmodels import alloc
from wxmodels.config.stream import StreamConfig
from wxmodels.data.fields import Fields
from wxmodels.geometry import lat_weights_np
from wxmodels.nets.forecaster import Forecaster
from wxmodels.nets.rollout import rollout

__all__ = [
    "Batches",
    "FitReport",
    "FitSettings",
    "fit",
    "masked_loss",
    "pick_device",
    "sample_order",
]

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class FitSettings:
    """How a fit trains: the schedule and the optimiser. Built from the cycle's
    :class:`~wxmodels.config.TrainConfig` in one place (:meth:`from_train`), and for the
    fine-tuning inside compression cells by one rule (:meth:`finetune`).

    Attributes:
        epochs: one-step epochs (cut short by ``patience``: the rollout phase then starts).
        rollout_epochs: epochs of rollout fine-tuning over ``rollout_steps`` steps (lr / 3).
        rollout_steps: steps of the rollout (at its start, with a curriculum).
        rollout_max_steps: when given, the rollout length grows linearly from
            ``rollout_steps`` to this over the rollout epochs, and validation scores a
            rollout this long; the inits must be complete for it.
        batch_size, lr, weight_decay: the optimiser (AdamW).
        patience: epochs without a better validation loss before the phase ends.
        max_minutes: wall-clock budget; the loop stops (keeping the best state) when spent.
        samples_per_epoch: random training samples per epoch (``None``: each once).
        input_noise: std (in each variable's std) of noise added to initial states.
        loss_norm: ``field`` (errors in units of each variable's std) or ``tendency`` (of the
            std of its one-step change).
    """

    epochs: int
    rollout_epochs: int = 0
    rollout_steps: int = 4
    rollout_max_steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 4
    max_minutes: float = 10.0
    samples_per_epoch: int | None = None
    input_noise: float = 0.0
    loss_norm: Literal["field", "tendency"] = "field"

    @classmethod
    def from_train(cls, train: Any) -> FitSettings:
        """The teacher's settings: every field of the :class:`TrainConfig` as it is."""
        return cls(
            epochs=train.epochs,
            rollout_epochs=train.rollout_epochs,
            rollout_steps=train.rollout_steps,
            rollout_max_steps=train.rollout_max_steps,
            batch_size=train.batch_size,
            lr=train.lr,
            weight_decay=train.weight_decay,
            patience=train.patience,
            max_minutes=train.max_minutes,
            samples_per_epoch=train.samples_per_epoch,
            input_noise=train.input_noise,
            loss_norm=train.loss_norm,
        )

    def finetune(
        self,
        *,
        epochs: int,
        rollout_epochs: int = 0,
        rollout_steps: int | None = None,
        lr: float | None = None,
        max_minutes: float,
    ) -> FitSettings:
        """Fine-tuning a model that is already trained (compression cells): a third of the
        learning rate unless given, no weight decay (it would pull pruned/clustered weights
        off their values), patience at least 2, a fixed rollout length, its own budget."""
        return replace(
            self,
            epochs=epochs,
            rollout_epochs=rollout_epochs,
            rollout_steps=rollout_steps or self.rollout_steps,
            rollout_max_steps=None,
            lr=lr if lr is not None else self.lr / 3,
            weight_decay=0.0,
            patience=max(2, self.patience),
            max_minutes=max_minutes,
        )

    def but(self, **changes: Any) -> FitSettings:
        """A copy with ``changes``."""
        return replace(self, **changes)


@dataclass
class FitReport:
    """What a fit did: losses per epoch (normalised MSE), the best validation loss, time."""

    epochs: int = 0
    best_val: float = float("inf")
    initial_val: float = float("nan")
    best_epoch: int = -1
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)
    """Wall time of each epoch's training pass (reads and steps; validation apart)."""
    samples: list[int] = field(default_factory=list)
    """Samples trained on in each epoch."""
    wall_s: float = 0.0
    stopped: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Batches:
    """Gathers ``(state, time, clim, targets)`` tensors for init indices.

    In-memory fields are indexed as tensors on ``device``; streamed fields
    (:class:`~wxmodels.data.lazy.StoreArray`) are read for each batch (:meth:`epoch` reads
    them in data-loader worker processes, ahead of the training step).
    ``clim_all (T, V, H, W)`` is the model's input climatology at every time (``None`` for
    models without one; a :class:`~wxmodels.data.lazy.ClimArray` for streamed fields).
    """

    def __init__(self, fields: Fields, history: int, device: torch.device, clim_all: Any = None):
        self.streamed = fields.streamed
        self.history = history
        self.device = device
        if self.streamed:
            self.data: Any = fields.data
            self.hours: Any = fields.hours.astype(np.float32)
            self.clim: Any = clim_all
            return
        self.data = torch.from_numpy(fields.data).to(device)
        self.hours = torch.from_numpy(fields.hours.astype(np.float32)).to(device)
        self.clim = None if clim_all is None else torch.from_numpy(clim_all).to(device)

    def get(self, inits: np.ndarray, steps: int):
        """Shapes: state ``(B, h, V, H, W)``, time ``(B,)``, clim ``(B, h + steps, V, H, W)``
        or ``None``, targets ``(B, steps, V, H, W)``."""
        if self.streamed:
            return self._to_device(self.read(np.asarray(inits), steps))
        i = torch.as_tensor(np.asarray(inits), device=self.device)
        hist = i[:, None] + torch.arange(-self.history + 1, 1, device=self.device)
        tgt = i[:, None] + torch.arange(1, steps + 1, device=self.device)
        clim = None
        if self.clim is not None:
            win = i[:, None] + torch.arange(-self.history + 1, steps + 1, device=self.device)
            clim = self.clim[win]
        return self.data[hist], self.hours[i], clim, self.data[tgt]

    def read(self, inits: np.ndarray, steps: int) -> tuple:
        """The batch of streamed fields as numpy arrays (runs in loader workers)."""
        hist = inits[:, None] + np.arange(-self.history + 1, 1)
        tgt = inits[:, None] + np.arange(1, steps + 1)
        win = np.concatenate([hist, tgt], axis=1)
        x = self.data[win]  # one read for history and targets
        clim = None if self.clim is None else np.asarray(self.clim[win], np.float32)
        return x[:, : self.history], self.hours[inits], clim, x[:, self.history :]

    def _to_device(self, batch: tuple) -> tuple:
        return tuple(
            None if a is None else torch.as_tensor(np.asarray(a)).to(self.device) for a in batch
        )

    def epoch(
        self, order: np.ndarray, steps: int, batch_size: int, stream: StreamConfig | None = None
    ) -> Iterator[tuple[np.ndarray, tuple]]:
        """``(inits, batch)`` for consecutive batches of ``order``; streamed fields are read
        by ``stream.loader_workers`` worker processes, ``stream.prefetch`` batches ahead."""
        plan = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
        workers = 0 if stream is None or not self.streamed else stream.loader_workers
        if workers and mp.current_process().daemon:
            # a Dask worker's process may not fork children: read in this process
            workers = 0
        if workers == 0:
            for idx in plan:
                yield idx, self.get(idx, steps)
            return
        assert stream is not None
        loader = torch.utils.data.DataLoader(
            _BatchReads(self, plan, steps),
            batch_size=None,
            shuffle=False,
            num_workers=min(workers, len(plan)),
            prefetch_factor=stream.prefetch,
            worker_init_fn=_loader_worker,
            multiprocessing_context="fork",
        )
        for idx, batch in zip(plan, loader, strict=True):
            yield idx, self._to_device(batch)


class _BatchReads(torch.utils.data.Dataset):
    """Batch ``k`` of a plan, read from the store (a loader worker's item)."""

    def __init__(self, batches: Batches, plan: list[np.ndarray], steps: int):
        self.batches, self.plan, self.steps = batches, plan, steps

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> tuple:
        state, tm, clim, truth = self.batches.read(np.asarray(self.plan[k]), self.steps)
        conv = torch.from_numpy
        return conv(state), conv(tm), None if clim is None else conv(clim), conv(truth)


def _loader_worker(_: int) -> None:
    """A loader worker reads on one thread and returns large buffers (chunks, batches) to the
    OS when freed, so its memory stays at its chunk cache over an epoch of any length."""
    torch.set_num_threads(1)
    alloc.mmap_large()


def sample_order(
    inits: np.ndarray, rng: np.random.Generator, fields: Fields, window_chunks: int = 4
) -> np.ndarray:
    """An epoch's order of ``inits``: a permutation for in-memory fields; for streamed ones,
    chunk-aware: the store's time chunks in random order, the inits shuffled within windows
    of ``window_chunks`` chunks (a batch touches a few chunks and each chunk is read about once
    per epoch, instead of once per sample)."""
    if not fields.streamed:
        return rng.permutation(inits)
    chunk = np.asarray(inits) // fields.data.time_chunk  # type: ignore[attr-defined]
    uniq = rng.permutation(np.unique(chunk))
    rank = np.empty(int(chunk.max()) + 1, np.int64)
    rank[uniq] = np.arange(len(uniq))
    window = rank[chunk] // max(window_chunks, 1)
    return inits[np.lexsort((rng.random(len(inits)), window))]


def masked_loss(
    pred: torch.Tensor, target: torch.Tensor, std: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Latitude-weighted MSE in std units over finite targets.

    A NaN forecast where the target is finite makes the loss NaN (never silently zero).
    Shapes: pred/target ``(B, S, V, H, W)``, std ``(V,)``, weights ``(H, 1)``.
    """
    ok = torch.isfinite(target)
    err = torch.where(ok, (pred - target) / std.view(1, 1, -1, 1, 1), torch.zeros_like(pred))
    w = weights * ok
    return (err.pow(2) * w).sum() / w.sum().clamp_min(1.0)


def fit(
    model: Forecaster,
    fields: Fields,
    train_inits: np.ndarray,
    val_inits: np.ndarray,
    settings: FitSettings,
    *,
    seed: int = 0,
    teacher: nn.Module | None = None,
    alpha: float = 1.0,
    device: torch.device | None = None,
    desc: str = "train",
    clim_all: Any = None,
    stream: StreamConfig | None = None,
) -> FitReport:
    """Train ``model`` in place and load its best validation state at the end.

    Args:
        model: a forecaster; its ``history`` and ``spec`` are read.
        fields: in-memory data.
        train_inits, val_inits: init indices (windows complete for the rollout).
        settings: the schedule and optimiser (:class:`FitSettings`).
        teacher: when given, targets are ``alpha * truth + (1 - alpha) * teacher rollout``
            (knowledge distillation).
        clim_all: the input climatology at every time of ``fields`` (climatology models).
        stream: how streamed fields are read (loader workers, prefetch, chunk-aware
            sampling); ignored for fields in memory.

    Returns:
        a :class:`FitReport`; validation is the loss of a ``rollout_steps`` rollout.
    """
    epochs, rollout_epochs = settings.epochs, settings.rollout_epochs
    rollout_steps, rollout_max_steps = settings.rollout_steps, settings.rollout_max_steps
    batch_size, lr, weight_decay = settings.batch_size, settings.lr, settings.weight_decay
    patience, max_minutes = settings.patience, settings.max_minutes
    samples_per_epoch, input_noise = settings.samples_per_epoch, settings.input_noise
    loss_norm = settings.loss_norm
    device = device or next(model.parameters()).device
    stream = stream or StreamConfig()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    spec = model.spec
    std = torch.tensor(spec.std, dtype=torch.float32, device=device)
    # per-variable loss scale: the field's std, or the std of its one-step change (as
    # GraphCast weights its loss), which keeps smooth variables from being drowned by the
    # fast, noisy ones (radiation, precipitation)
    scale = (
        std
        if loss_norm == "field"
        else torch.tensor(spec.tendency_std, dtype=torch.float32, device=device)
    )
    weights = torch.from_numpy(lat_weights_np(fields.lat)).float().view(-1, 1).to(device)
    batches = Batches(fields, model.history, device, clim_all)
    if teacher is not None:
        teacher = teacher.to(device).eval()
        tb = Batches(fields, int(getattr(teacher, "history", 1)), device, clim_all)
    report = FitReport()
    t0 = time.perf_counter()
    best_state = copy.deepcopy(model.state_dict())
    longest = max(rollout_steps, rollout_max_steps or rollout_steps)
    val_steps = longest if rollout_epochs else 1
    lengths = np.linspace(rollout_steps, longest, max(rollout_epochs, 1)).round().astype(int)
    plan = [("one-step", 1, lr)] * epochs + [
        ("rollout", int(n), lr / 3) for n in lengths[:rollout_epochs]
    ]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    noise_scale = std.view(1, 1, -1, 1, 1) * input_noise
    bad = 0

    def targets(idx, truth, steps):
        if teacher is None or alpha >= 1.0:
            return truth
        state, tm, clim, _ = tb.get(idx, steps)
        with torch.no_grad():
            tp = rollout(teacher, state, tm, steps, spec.step_hours, clim)
        return alpha * truth + (1 - alpha) * tp

    # validation batches within ~256 MiB of fields and activations on large grids
    per_sample = fields.valid.size * len(fields.variables) * 4 * (model.history + val_steps) * 8
    val_batch = max(1, min(64, int(256 * 2**20 / per_sample)))
    if fields.streamed:  # and each batch's read within the streaming bound
        val_batch = max(1, min(val_batch, int(stream.max_read_mb * 2**20 / (per_sample / 8))))

    def evaluate(steps: int) -> float:
        model.eval()
        tot, n = 0.0, 0
        with torch.no_grad():
            for k in range(0, len(val_inits), val_batch):
                idx = val_inits[k : k + val_batch]
                state, tm, clim, truth = batches.get(idx, steps)
                pred = rollout(model, state, tm, steps, spec.step_hours, clim)
                tot += float(masked_loss(pred, truth, scale, weights)) * len(idx)
                n += len(idx)
        return tot / max(n, 1)

    # the starting point is a candidate too: training that never beats it on validation
    # (a warm start, a least-squares initialisation, a model before fine-tuning) keeps it
    report.best_val = report.initial_val = evaluate(val_steps)
    log.info("%s initial validation loss %.4f", desc, report.best_val)
    if not plan:
        return report
    bar = tqdm(total=len(plan), desc=desc, disable=None, leave=False)
    ep = -1
    while ep + 1 < len(plan):
        ep += 1
        phase, steps, ep_lr = plan[ep]
        if ep > 0 and plan[ep - 1][0] != phase:
            bad = 0  # a new phase gets its own patience
        bar.update(1)
        # cosine decay within each phase
        first = next(j for j, p in enumerate(plan) if p[0] == phase)
        n_phase = sum(1 for p in plan if p[0] == phase)
        frac = (ep - first) / max(n_phase, 1)
        for g in opt.param_groups:
            g["lr"] = ep_lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * frac)))
        model.train()
        order = sample_order(train_inits, rng, fields, stream.window_chunks)
        if samples_per_epoch:
            order = order[:samples_per_epoch]
        tot, n = 0.0, 0
        t_ep = time.perf_counter()
        for idx, (state, tm, clim, truth) in batches.epoch(order, steps, batch_size, stream):
            tgt = targets(idx, truth, steps)
            if input_noise:
                state = state + torch.randn_like(state) * noise_scale
            pred = rollout(model, state, tm, steps, spec.step_hours, clim)
            loss = masked_loss(pred, tgt, scale, weights)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{desc}: the training loss is not finite (epoch "
                    f"{ep + 1}); lower the learning rate"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            tot += loss.item() * len(idx)
            n += len(idx)
            if time.perf_counter() - t0 > max_minutes * 60:
                break
        report.train_s.append(time.perf_counter() - t_ep)
        report.samples.append(n)
        val = evaluate(val_steps)
        report.train_loss.append(tot / max(n, 1))
        report.val_loss.append(val)
        report.phase.append(phase)
        report.steps.append(steps)
        report.epochs = ep + 1
        bar.set_postfix(train=f"{tot / max(n, 1):.4f}", val=f"{val:.4f}", phase=phase)
        log.info("%s epoch %d (%s): train %.4f val %.4f", desc, ep + 1, phase, tot / max(n, 1), val)
        if val < report.best_val:
            report.best_val, report.best_epoch, bad = val, ep, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        if time.perf_counter() - t0 > max_minutes * 60:
            report.stopped = "time budget"
            break
        if bad >= patience and phase == "one-step" and rollout_epochs:
            # go on to the rollout phase rather than stopping outright
            plan = plan[: ep + 1] + [p for p in plan[ep + 1 :] if p[0] == "rollout"]
            bar.total = len(plan)
            bad = 0
        elif bad >= patience:
            report.stopped = "early stopping"
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    report.wall_s = time.perf_counter() - t0
    return report
