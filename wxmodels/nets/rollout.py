"""Autoregressive rollout of a one-step forecaster (torch)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["rollout"]


def rollout(
    model: nn.Module,
    state: torch.Tensor,
    time: torch.Tensor,
    steps: int,
    step_hours: float,
    clim: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run ``steps`` forward calls, feeding each output back as the newest state.

    Args:
        model: one-step forecaster ``(state (B, h, V, H, W), time (B,)[, clim]) -> (B, V, H, W)``.
        state: initial history ``(B, h, V, H, W)``.
        time: hours since 1970 of the newest state ``(B,)``.
        steps: number of steps.
        step_hours: hours per step.
        clim: for climatology models, the climatology at the history times and at every step's
            valid time ``(B, h + steps, V, H, W)``.

    Returns:
        forecasts ``(B, steps, V, H, W)``; index ``s`` is valid at ``time + (s + 1) * step_hours``.
    """
    outs = []
    h = state.shape[1]
    for s in range(steps):
        nxt = model(state, time) if clim is None else model(state, time, clim[:, s : s + h + 1])
        outs.append(nxt)
        state = torch.cat([state[:, 1:], nxt[:, None]], dim=1)
        time = time + step_hours
    return torch.stack(outs, dim=1)
