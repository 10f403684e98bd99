"""The forecaster's architecture and its training."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from wxmodels.config.base import Strict

__all__ = ["NetConfig", "TrainConfig"]


class NetConfig(Strict):
    """A forecaster: predicts the next state from ``history`` past states."""

    arch: str = "unet"
    """``unet``: encoder-decoder with skips; ``resnet``: residual blocks at full resolution;
    ``transformer``: patch embedding, attention blocks, patch recovery; or a plug-in core:
    a name registered in the entry-point group ``wxcompress.cores``, or ``module:factory``
    (which imports and runs that module: see :mod:`wxmodels.nets.plugins`)."""
    width: int = Field(32, ge=2, le=4096)
    """Channels at the first level (doubled at each level of a U-Net); a transformer's
    embedding width."""
    depth: int = Field(2, ge=0, le=64)
    """U-Net: number of down-samplings (at most 4); ResNet: residual blocks; transformer:
    attention blocks."""
    heads: int = Field(4, ge=1, le=64)
    """Transformer: attention heads (``width`` must be a multiple)."""
    patch: int = Field(2, ge=1, le=16)
    """Transformer: patch size in grid cells (a token per ``patch x patch`` cells)."""
    window: int = Field(0, ge=0, le=64)
    """Transformer: attention window in tokens (0: full attention)."""
    mlp_ratio: float = Field(2.0, gt=0, le=16)
    """Transformer: MLP width relative to ``width``."""
    options: dict[str, Any] = {}
    """Keyword arguments for a plug-in core's factory (JSON values)."""
    activation: Literal["relu", "silu", "gelu"] = "relu"
    history: int = Field(2, ge=1, le=6)
    """Past states given as input (1 = the current state only)."""
    padding: Literal["auto", "reflect", "periodic", "zeros"] = "auto"
    """Edge handling: ``periodic`` in longitude for global grids, ``reflect`` for limited
    areas; ``auto`` picks by whether the longitudes span 360 degrees."""
    time_features: bool = True
    """Give hour-of-day and day-of-year (sin/cos) as inputs."""
    climatology: bool = True
    """Take the climatology of the history and next valid times as input and forecast
    anomalies, with a learned per-variable persistence that blends toward climatology at long
    leads. The climatology (fitted on the training window) ships with the model."""
    statics: Literal["auto", "none"] = "auto"
    """``auto``: the store's static fields (orography, land-sea mask) when it has them."""
    linear_skip: bool = True
    """Add a pointwise linear map of the inputs to the network's output, so that the model
    holds linear regression on its inputs as a special case."""
    linear_init: bool = True
    """Start from the least-squares fit of the linear path, with the core's output zeroed
    (needs ``linear_skip``; not on a warm start): the model begins as a linear regression on
    all its inputs and learns only what is nonlinear."""
    spatial_rank: int = Field(0, ge=0, le=512)
    """A reduced-rank linear map from the whole history field (every variable at every cell)
    to the whole increment, beside the network: the spatial regression a statistician fits
    (advection, teleconnections, the large scales a conv's receptive field misses), kept to
    this rank (EOF truncation) so it stays small. With ``linear_init`` it starts at the ridge
    solution on the residual of the pointwise path, its strength chosen on validation. ``0``:
    off. Needs history x variables x cells <= 8192."""
    members: int = Field(1, ge=1, le=16)
    """An ensemble of this many cores trained independently (derived seeds, each from the
    same start) whose one-step outputs are averaged: one model, one ONNX graph, ``members``
    times the cost. Averaging cancels much of what each member overfits."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Channel dropout inside the conv blocks (regularisation for small data)."""

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        return check_arch(v, "net.arch")

    @model_validator(mode="after")
    def _shape(self) -> NetConfig:
        check_shape(self.arch, self.width, self.depth, self.heads)
        return self


BUILTIN_ARCHS = ("unet", "resnet", "transformer")
CORES_GROUP = "wxcompress.cores"


def check_arch(v: str, where: str) -> str:
    """A built-in core, a name in the entry-point group ``wxcompress.cores``, or
    ``module:factory`` (checked without importing it: loading runs the user's code, which
    happens when the model is built)."""
    if v in BUILTIN_ARCHS or re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", v):
        return v
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=CORES_GROUP)}
    if v in names:
        return v
    raise ValueError(
        f"{where} {v!r} is neither a built-in core ({', '.join(BUILTIN_ARCHS)}), nor registered "
        f"in the entry-point group {CORES_GROUP!r}"
        + (f" ({', '.join(sorted(names))})" if names else "")
        + ", nor 'module:factory'"
    )


def check_shape(arch: str, width: int, depth: int, heads: int) -> None:
    if arch == "unet" and depth > 4:
        raise ValueError(f"a U-Net has at most 4 down-samplings (depth {depth})")
    if arch == "transformer" and width % heads:
        raise ValueError(f"transformer width {width} is not a multiple of heads {heads}")


class TrainConfig(Strict):
    """Training schedule: one-step epochs, then autoregressive rollout fine-tuning."""

    init: Literal["registry", "scratch"] = "registry"
    """``registry``: warm-start from the registry's current ``teacher`` when it has the same
    architecture and variables and the store has moved since it was trained; ``scratch``:
    random initial weights."""
    seed: int = 0
    """Base seed; per-run seeds are derived from it with ``numpy.random.SeedSequence``."""
    epochs: int = Field(20, ge=0, le=100_000)
    """One-step training epochs."""
    rollout_epochs: int = Field(4, ge=0, le=100_000)
    """Epochs of rollout fine-tuning after the one-step phase."""
    rollout_steps: int = Field(4, ge=2, le=1000)
    """Autoregressive steps per sample at the start of rollout fine-tuning."""
    rollout_max_steps: int | None = Field(None, ge=2, le=1000)
    """Curriculum: the rollout length grows linearly from ``rollout_steps`` to this over the
    rollout epochs, and validation scores a rollout this long (the longest lead that matters
    for the gates). ``None``: fixed at ``rollout_steps``."""
    batch_size: int = Field(16, ge=1, le=65_536)
    lr: float = Field(2e-3, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0, le=10)
    patience: int = Field(4, ge=1, le=100_000)
    """Stop when the validation loss has not improved for this many epochs."""
    max_minutes: float = Field(10.0, gt=0, le=525_600)
    """Wall-clock budget for the whole training run."""
    window: str | None = None
    """Train on the last ``window`` of the training part only (``5Y``, ``18M``, ``90D``): a
    retrain then costs the same however long the archive grows. ``None``: all of it."""
    samples_per_epoch: int | None = Field(None, ge=1, le=100_000_000)
    """Random training samples per epoch; ``None`` = every sample once."""
    loss_norm: Literal["tendency", "field"] = "field"
    """Per-variable scale of the loss: the std of the variable's one-step change
    (``tendency``, so that each variable's persistence error weighs about the same) or of the
    field itself."""
    input_noise: float = Field(0.0, ge=0, le=10)
    """Std of the Gaussian noise added to initial states in training (in each variable's std)."""
    threads: int = Field(0, ge=0, le=1024)
    """torch CPU threads (0 = leave torch's default)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        from wxmodels.config.replay import parse_period

        if v is not None:
            parse_period(v)
        return v
