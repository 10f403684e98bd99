"""The configurations of the compression methods, one class per method, below the methods
themselves (``wxmodels.compress.<method>`` holds each one's ``apply``), so that a config can be
loaded and validated without torch. ``stage`` says where a method runs: ``torch`` methods map a
model to a model, ``onnx`` methods an exported file to a new one (after export, last in a cell).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from wxmodels.config.base import Strict
from wxmodels.config.model import check_arch, check_shape

__all__ = [
    "ClusterConfig",
    "DepthConfig",
    "DistillConfig",
    "DynamicConfig",
    "Int8Config",
    "LowRankConfig",
    "PruneConfig",
    "QatConfig",
    "StructuredConfig",
]


class PruneConfig(Strict):
    """Magnitude pruning of the core's conv and linear weights."""

    method: Literal["prune"] = "prune"
    stage: ClassVar[Literal["torch", "onnx"]] = "torch"
    amount: float = Field(0.5, gt=0, lt=1)
    """Final fraction of weights set to zero."""
    scope: Literal["global", "layer"] = "global"
    """``global``: one threshold over all chosen layers; ``layer``: the same fraction in each."""
    steps: int = Field(2, ge=1, le=10)
    """Prune/fine-tune rounds; sparsity follows the cubic schedule of Zhu & Gupta (2017)."""
    finetune_epochs: int = Field(2, ge=0, le=100_000)
    """Fine-tuning epochs after each round."""


class StructuredConfig(Strict):
    """Structured pruning that removes whole parts: inner channels of conv blocks, attention
    heads and MLP channels of transformer blocks."""

    method: Literal["structured"] = "structured"
    stage: ClassVar[Literal["torch", "onnx"]] = "torch"
    amount: float = Field(0.5, gt=0, lt=1)
    """Fraction of each block's inner channels (and of each attention layer's heads) removed."""
    criterion: Literal["l1", "l2"] = "l1"
    """Filter norm used to rank channels."""
    finetune_epochs: int = Field(3, ge=0, le=100_000)


class LowRankConfig(Strict):
    """Truncated-SVD factorisation of the core's conv and linear layers."""

    method: Literal["lowrank"] = "lowrank"
    stage: ClassVar[Literal["torch", "onnx"]] = "torch"
    energy: float | None = Field(None, gt=0, le=1)
    """Keep the smallest rank holding this fraction of the squared singular values."""
    ratio: float | None = Field(0.25, gt=0, le=1)
    """Keep ``ceil(ratio * full_rank)`` singular values (used when ``energy`` is unset)."""
    min_rank: int = Field(2, ge=1, le=100_000)
    finetune_epochs: int = Field(3, ge=0, le=100_000)

    @model_validator(mode="after")
    def _one_rule(self) -> LowRankConfig:
        if self.energy is None and self.ratio is None:
            raise ValueError("lowrank needs `energy` or `ratio`")
        return self


class DistillConfig(Strict):
    """A student architecture and its training."""

    method: Literal["distill"] = "distill"
    stage: ClassVar[Literal["torch", "onnx"]] = "torch"
    arch: str = "unet"
    """The student's core: any ``net.arch`` (a built-in, an entry point, ``module:factory``)."""
    width: int = Field(8, ge=2, le=4096)
    depth: int = Field(2, ge=0, le=64)
    heads: int = Field(4, ge=1, le=64)
    """Transformer students: attention heads (patch and window are the teacher's)."""
    activation: Literal["relu", "silu", "gelu"] = "relu"
    history: int | None = Field(None, ge=1, le=6)
    """Past states the student sees (the teacher's when ``None``)."""
    alpha: float = Field(0.5, ge=0, le=1)
    """Weight of the truth in the target; ``1 - alpha`` goes to the teacher's forecast."""
    epochs: int = Field(15, ge=1, le=100_000)
    rollout_epochs: int = Field(3, ge=0, le=100_000)
    rollout_steps: int | None = Field(None, ge=2, le=1000)
    lr: float | None = Field(None, gt=0, le=10)
    """Learning rate (the teacher's when ``None``)."""
    padding: Literal["auto", "reflect", "periodic", "zeros"] | None = None
    """The student's edge handling (the teacher's when ``None``). ``zeros`` (the normalised
    anomaly's climatological value at the boundary) needs no ``Pad`` node: the exported core
    stays in onnxruntime's blocked layout, the cheapest graph at batch 1."""

    @model_validator(mode="after")
    def _student(self) -> DistillConfig:
        check_arch(self.arch, "distill.arch")
        check_shape(self.arch, self.width, self.depth, self.heads)
        return self


class DepthConfig(Strict):
    """Depth distillation (after FuXi's 48 -> 6 blocks): a student with fewer blocks, each
    standing for a contiguous group of the teacher's blocks. Each student block starts as one
    block of its group and is first trained alone to map the teacher's features at its group's
    input to the teacher's features at its group's output; then the whole student is fine-tuned
    end to end against the truth and the teacher's forecasts. For cores that are a stack of
    blocks: the transformer, the ResNet, a plug-in with ``embed``/``step``/``readout``."""

    method: Literal["depth"] = "depth"
    stage: ClassVar[Literal["torch", "onnx"]] = "torch"
    depth: int = Field(2, ge=1, le=64)
    """The student's blocks (fewer than the teacher's)."""
    init: Literal["first", "last"] = "first"
    """Which block of its group a student block starts as."""
    block_epochs: int = Field(3, ge=0, le=100_000)
    """Epochs of block-wise feature distillation."""
    epochs: int = Field(5, ge=0, le=100_000)
    """End-to-end one-step fine-tuning epochs afterwards."""
    rollout_epochs: int = Field(0, ge=0, le=100_000)
    rollout_steps: int | None = Field(None, ge=2, le=1000)
    alpha: float = Field(0.5, ge=0, le=1)
    """Weight of the truth in the end-to-end target; ``1 - alpha`` goes to the teacher's."""
    lr: float | None = Field(None, gt=0, le=10)
    """Learning rate (the teacher's when ``None``)."""


class ClusterConfig(Strict):
    """Per-layer scalar k-means on the core's conv and linear weights."""

    method: Literal["cluster"] = "cluster"
    stage: ClassVar[Literal["torch", "onnx"]] = "torch"
    bits: int = Field(4, ge=1, le=8)
    """Centroids per layer: ``2**bits``."""
    iterations: int = Field(25, ge=1, le=10_000)
    finetune_epochs: int = Field(2, ge=0, le=100_000)


class QatConfig(Strict):
    """Fine-tuning under simulated int8 (weights per channel, activations per tensor)."""

    method: Literal["qat"] = "qat"
    stage: ClassVar[Literal["torch", "onnx"]] = "torch"
    finetune_epochs: int = Field(3, ge=1, le=100_000)
    lr_scale: float = Field(0.3, gt=0, le=100)
    """Learning rate relative to the teacher's fine-tuning rate (small: the weights only move
    to the nearby integers that serve the forecast best)."""
    momentum: float = Field(0.05, gt=0, le=1)
    """Weight of each batch in the moving average of activation ranges."""


class Int8Config(Strict):
    """Static QDQ quantization (onnxruntime)."""

    method: Literal["int8"] = "int8"
    stage: ClassVar[Literal["torch", "onnx"]] = "onnx"
    calibration_samples: int = Field(64, ge=1, le=100_000)
    """Random training-window states used to calibrate activation ranges."""
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    reduce_range: bool = False
    """7-bit weights: avoids u8s8 saturation on CPUs without VNNI."""
    op_types: list[str] = Field(["Conv", "MatMul", "Gemm"], min_length=1)
    """ONNX op types to quantize (the rest stay fp32): convs, and the linear layers and
    attention products of a transformer."""
    fp32_layers: list[Literal["first", "last"]] = ["first", "last"]
    """Weight layers left in fp32: the first (conv or patch embedding) sees raw normalised
    inputs of every variable and the last maps features to every variable's tendency; they
    are the most sensitive layers and hold few weights (the usual practice of keeping them in
    float)."""


class DynamicConfig(Strict):
    """Dynamic (weight-only calibration-free) int8 quantization (onnxruntime)."""

    method: Literal["dynamic"] = "dynamic"
    stage: ClassVar[Literal["torch", "onnx"]] = "onnx"
    op_types: list[Literal["MatMul", "Gemm", "Conv"]] = Field(
        ["MatMul", "Gemm", "Conv"], min_length=1
    )
    """ONNX op types to quantize; those the graph lacks are ignored."""
    per_channel: bool = False
    reduce_range: bool = False
    fp32_layers: list[Literal["first", "last"]] = ["first", "last"]
    """Weight layers left in fp32 (as for static int8)."""
