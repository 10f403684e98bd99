"""Helpers shared by the methods: which layers to touch, and the context methods may use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from torch import nn

from wxmodels.config.model import TrainConfig
from wxmodels.data.fields import Fields, Split
from wxmodels.data.stats import Climatology
from wxmodels.nets.forecaster import Forecaster
from wxmodels.nets.layers import LowRankConv2d, LowRankLinear, PaddedConv
from wxmodels.training.loop import FitReport, FitSettings, fit

__all__ = [
    "CompressContext",
    "FilterFn",
    "leaf_layers",
    "weight_layers",
]

FilterFn = Callable[[nn.Module, str], bool]
"""``filter_fn(module, fqn) -> bool``: whether a method may transform the layer ``fqn``."""


_UNITS = (PaddedConv, LowRankConv2d, LowRankLinear, nn.Conv2d, nn.Linear)


def weight_layers(
    model: Forecaster, filter_fn: FilterFn | None = None
) -> Iterator[tuple[str, nn.Module]]:
    """The core's weight layers that the methods act on (fqn relative to the core), whatever
    the family: each :class:`PaddedConv` of the conv cores, each ``Linear`` of the transformer,
    each ``Linear``/``Conv2d`` of a plug-in core; a factorised layer is one unit."""
    taken: list[str] = []
    for fqn, m in model.core.named_modules():
        if not isinstance(m, _UNITS) or any(fqn.startswith(t + ".") for t in taken):
            continue
        taken.append(fqn)
        if filter_fn is None or filter_fn(m, fqn):
            yield fqn, m


def leaf_layers(unit: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The plain ``Conv2d``/``Linear`` layers that hold a unit's weights (two for a low-rank
    unit)."""
    inner = unit.conv if isinstance(unit, PaddedConv) else unit
    if isinstance(inner, LowRankConv2d | LowRankLinear):
        return [inner.first, inner.second]
    assert isinstance(inner, nn.Conv2d | nn.Linear)
    return [inner]


@dataclass
class CompressContext:
    """What a method may need besides the model: data, the teacher, a fine-tuning loop.

    Attributes:
        teacher: the (frozen) teacher.
        fields, split: in-memory data and its time split.
        train: the teacher's training config (defaults for fine-tuning).
        seed: this cell's seed (derived from the base seed and the cell id).
        max_minutes: wall-clock budget of each fine-tuning call.
    """

    teacher: Forecaster
    fields: Fields
    split: Split
    train: TrainConfig
    seed: int = 0
    max_minutes: float = 5.0
    clim_all: np.ndarray | None = None
    """The teacher's input climatology at every time (climatology models)."""
    climatology: Climatology | None = None
    """That climatology (:class:`~wxmodels.data.stats.Climatology`), for ONNX feeds."""
    act_ranges: dict[str, tuple[float, float]] | None = None
    """Conv input ranges learned by a ``qat`` step (``{conv fqn: (lo, hi)}``), which the
    ``int8`` step uses instead of calibrating them."""

    def inits(self, part: str, history: int, steps: int) -> np.ndarray:
        return self.split.inits(self.fields, part, history=history, lead_steps=steps)

    def finetune(
        self,
        model: Forecaster,
        *,
        epochs: int,
        rollout_epochs: int = 0,
        rollout_steps: int | None = None,
        lr: float | None = None,
        teacher: Forecaster | None = None,
        alpha: float = 1.0,
        desc: str = "finetune",
    ) -> FitReport:
        """Train ``model`` in place with the shared loop (validation early stopping), by the
        fine-tuning rule (:meth:`~wxmodels.training.loop.FitSettings.finetune`)."""
        settings = FitSettings.from_train(self.train).finetune(
            epochs=epochs,
            rollout_epochs=rollout_epochs,
            rollout_steps=rollout_steps,
            lr=lr,
            max_minutes=self.max_minutes,
        )
        tr = self.inits("train", model.history, settings.rollout_steps)
        va = self.inits("val", model.history, settings.rollout_steps)
        return fit(
            model,
            self.fields,
            tr,
            va,
            settings,
            seed=self.seed,
            teacher=teacher,
            alpha=alpha,
            desc=desc,
            clim_all=self.clim_all,
        )

    def calibration(self, n: int, history: int) -> list[dict[str, np.ndarray]]:
        """``n`` seeded random ONNX feeds (``state``, ``time`` and, for climatology models,
        ``clim``) from the training part, batch 1 each."""
        inits = self.inits("train", history, 1)
        rng = np.random.default_rng(self.seed)
        pick = rng.choice(inits, size=min(n, len(inits)), replace=False)
        out = []
        for i in pick:
            feed = {
                "state": self.fields.data[i - history + 1 : i + 1][None].astype(np.float32),
                "time": self.fields.hours[[i]].astype(np.float32),
            }
            if self.climatology is not None:
                feed["clim"] = self.climatology.select(self.fields.variables).window(
                    feed["time"], history, self.fields.step_hours
                )
            out.append(feed)
        return out
