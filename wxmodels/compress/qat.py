"""Quantization-aware fine-tuning (fake quant) for the int8 QDQ export.

Every conv and linear layer the method may touch trains under simulated int8: its weights
pass through per-output-channel symmetric int8 fake quantization (scale ``max|w| / 127``, the rule
onnxruntime's per-channel QDQ quantizer applies, so the integers learned here are the ones
exported) and its input through per-tensor asymmetric uint8 fake quantization with ranges
tracked by an exponential moving average of the batch min/max (the range always holds 0, as
onnxruntime's calibration does). Gradients pass straight through the rounding.

The learned float weights stay in the model; the learned activation ranges are handed to the
cell's ``int8`` step (``CompressContext.act_ranges``), which writes them into the QDQ model
in place of calibrated ones. A ``qat`` step must therefore be followed by an ``int8`` step
(checked by :class:`~wxmodels.config.compress.CellConfig`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from wxmodels.compress.common import CompressContext, FilterFn, weight_layers
from wxmodels.compress.registry import Method, register_method
from wxmodels.config.methods import QatConfig
from wxmodels.nets.forecaster import Forecaster

__all__ = ["QatConfig", "apply", "fake_quant_activation", "fake_quant_weight"]


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 fake quantization (straight-through gradient)."""
    amax = w.detach().abs().amax(dim=tuple(range(1, w.dim()))).clamp_min(1e-12)
    scale = (amax / 127.0).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


def fake_quant_activation(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Per-tensor asymmetric uint8 fake quantization of ``x`` over ``[lo, hi]`` (which holds 0)."""
    scale = max((hi - lo) / 255.0, 1e-12)
    zero = int(min(255, max(0, round(-lo / scale))))
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)


class _WeightFQ(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quant_weight(w)


class _InputFQ:
    """Forward pre-hook: tracks the input range (EMA, training only) and fake-quantizes."""

    def __init__(self, momentum: float):
        self.momentum = momentum
        self.lo: float | None = None
        self.hi: float | None = None

    def __call__(self, _module: nn.Module, args: tuple) -> tuple:
        (x, *rest) = args
        if _module.training or self.lo is None:
            lo = min(float(x.detach().min()), 0.0)
            hi = max(float(x.detach().max()), 0.0)
            if self.lo is None or self.hi is None:
                self.lo, self.hi = lo, hi
            else:
                m = self.momentum
                self.lo = (1 - m) * self.lo + m * lo
                self.hi = (1 - m) * self.hi + m * hi
        if self.lo is None or self.hi is None:
            raise RuntimeError("activation range not observed yet")
        return (fake_quant_activation(x, self.lo, self.hi), *rest)


def _layers(model: Forecaster, filter_fn: FilterFn | None) -> list[tuple[str, nn.Module]]:
    """``(fqn in the forecaster, layer)`` of every plain conv and linear the method may touch
    (both factors of a low-rank unit: each is a node of its own in the graph)."""
    out: list[tuple[str, nn.Module]] = []
    for fqn, unit in weight_layers(model, filter_fn):
        for name, m in unit.named_modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                out.append((f"core.{fqn}" + (f".{name}" if name else ""), m))
    return out


def apply(
    model: Forecaster,
    config: QatConfig,
    *,
    ctx: CompressContext,
    filter_fn: FilterFn | None = None,
) -> Forecaster:
    convs = _layers(model, filter_fn)
    if not convs:
        raise ValueError("qat: the filter selected no layer to quantize")
    hooks, observers = [], {}
    for fqn, conv in convs:
        parametrize.register_parametrization(conv, "weight", _WeightFQ())
        observers[fqn] = obs = _InputFQ(config.momentum)
        hooks.append(conv.register_forward_pre_hook(obs))
    try:
        ctx.finetune(
            model,
            epochs=config.finetune_epochs,
            lr=ctx.train.lr * config.lr_scale,
            desc="qat",
        )
    finally:
        for h in hooks:
            h.remove()
        for _, conv in convs:
            # keep the trained float weights: the int8 export rounds them exactly as above
            parametrize.remove_parametrizations(conv, "weight", leave_parametrized=False)
    ctx.act_ranges = {
        fqn: (o.lo, o.hi) for fqn, o in observers.items() if o.lo is not None and o.hi is not None
    }
    return model


register_method(Method("qat", QatConfig, "torch", apply))
