"""Autoregressive rollout of a one-step forecaster (torch)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["rollout"]


def rollout(
    model: nn.Module, state: torch.Tensor, time: torch.Tensor, steps: int, step_hours: float
) -> torch.Tensor:
    """Run ``steps`` forward calls, feeding each output back as the newest state.

    Args:
        model: one-step forecaster ``(state (B, h, V, H, W), time (B,)) -> (B, V, H, W)``.
        state: initial history ``(B, h, V, H, W)``.
        time: hours since 1970 of the newest state ``(B,)``.
        steps: number of steps.
        step_hours: hours per step.

    Returns:
        forecasts ``(B, steps, V, H, W)``; index ``s`` is valid at ``time + (s + 1) * step_hours``.
    """
    outs = []
    for _ in range(steps):
        nxt = model(state, time)
        outs.append(nxt)
        state = torch.cat([state[:, 1:], nxt[:, None]], dim=1)
        time = time + step_hours
    return torch.stack(outs, dim=1)
