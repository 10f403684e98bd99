"""The forecaster's architecture and its training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wxmodels.config.base import Strict

__all__ = ["NetConfig", "TrainConfig"]


class NetConfig(Strict):
    """A convolutional forecaster: predicts the next state from ``history`` past states."""

    arch: Literal["unet", "resnet"] = "unet"
    """``unet``: encoder-decoder with skips; ``resnet``: residual blocks at full resolution."""
    width: int = Field(32, ge=2, le=1024)
    """Channels at the first level (doubled at each level of a U-Net)."""
    depth: int = Field(2, ge=0, le=4)
    """U-Net: number of down-samplings; ResNet: number of residual blocks."""
    activation: Literal["relu", "silu", "gelu"] = "relu"
    history: int = Field(2, ge=1, le=6)
    """Past states given as input (1 = the current state only)."""
    padding: Literal["auto", "reflect", "periodic", "zeros"] = "auto"
    """Edge handling: ``periodic`` in longitude for global grids, ``reflect`` for limited
    areas; ``auto`` picks by whether the longitudes span 360 degrees."""
    time_features: bool = True
    """Give hour-of-day and day-of-year (sin/cos) as inputs."""


class TrainConfig(Strict):
    """Training schedule: one-step epochs, then autoregressive rollout fine-tuning."""

    seed: int = 0
    """Base seed; per-run seeds are derived from it with ``numpy.random.SeedSequence``."""
    epochs: int = Field(20, ge=0)
    """One-step training epochs."""
    rollout_epochs: int = Field(4, ge=0)
    """Epochs of rollout fine-tuning after the one-step phase."""
    rollout_steps: int = Field(4, ge=2)
    """Autoregressive steps per sample during rollout fine-tuning."""
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(4, ge=1)
    """Stop when the validation loss has not improved for this many epochs."""
    max_minutes: float = Field(10.0, gt=0)
    """Wall-clock budget for the whole training run."""
    samples_per_epoch: int | None = Field(None, ge=1)
    """Random training samples per epoch; ``None`` = every sample once."""
    threads: int = Field(0, ge=0)
    """torch CPU threads (0 = leave torch's default)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
