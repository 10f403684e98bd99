"""Is a difference in RMSE signal or noise? A paired block bootstrap over initialisation times.

Two forecasts scored on the same inits give per-init spatial MSEs ``a_i`` and ``b_i``; their
RMSEs are ``sqrt(mean a)`` and ``sqrt(mean b)``. Resampling *the same* inits for both (paired)
keeps what they share (a hard day is hard for both), and resampling them in blocks of
consecutive inits keeps the autocorrelation of the errors (weather regimes last days; one
init's 24 h error and the next init's overlap), as the circular block bootstrap of Politis &
Romano (1992) does. WeatherBench-X reports such intervals for its scorecards.

The statistic is the relative difference ``sqrt(mean a) / sqrt(mean b) - 1``; its interval at
confidence ``c`` is the ``1 - c`` and ``c`` quantiles of the resampled statistic, so that "worse
beyond 2 % at 95 %" reads ``lower > 0.02`` and "better at 95 %" reads ``upper < 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "block_length", "compare", "resample_indices"]

SEED = 20_240_601  # fixed: the same scores always give the same verdict


@dataclass(frozen=True)
class Comparison:
    """``estimate``, ``lower``, ``upper``: relative RMSE difference ``a / b - 1`` and its
    bounds at ``confidence`` (one-sided each); ``block``: inits per bootstrap block."""

    estimate: float
    lower: float
    upper: float
    confidence: float
    block: int
    n: int

    @property
    def worse(self) -> bool:
        """``a`` is worse than ``b`` at the confidence."""
        return self.lower > 0

    @property
    def better(self) -> bool:
        """``a`` is better than ``b`` at the confidence."""
        return self.upper < 0

    def worse_beyond(self, tolerance: float) -> bool:
        """``a`` is worse than ``b`` by more than ``tolerance`` at the confidence."""
        return self.lower > tolerance

    def describe(self) -> str:
        return (
            f"{self.estimate:+.1%} [{self.lower:+.1%}, {self.upper:+.1%}] "
            f"at {self.confidence:.0%}, {self.n} inits in blocks of {self.block}"
        )

    def to_list(self) -> list[float]:
        return [self.estimate, self.lower, self.upper]


def block_length(diff: np.ndarray, min_block: int = 1) -> int:
    """Inits per block: the first lag at which the autocorrelation of ``diff`` falls below
    0.1 (errors further apart are nearly independent), at least ``min_block`` (the inits a
    forecast's lead spans overlap by construction) and at most a quarter of the record."""
    d = np.asarray(diff, dtype=np.float64)
    n = len(d)
    cap = max(1, n // 4)
    d = d - d.mean()
    var = float(d @ d)
    lag = 1
    if var > 0:
        while lag < cap and float(d[:-lag] @ d[lag:]) / var >= 0.1:
            lag += 1
    return int(min(cap, max(min_block, lag)))


def resample_indices(n: int, block: int, samples: int, seed: int = SEED) -> np.ndarray:
    """``(samples, n)`` indices of a circular block bootstrap."""
    rng = np.random.default_rng(seed)
    nblocks = math.ceil(n / block)
    starts = rng.integers(0, n, size=(samples, nblocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return idx.reshape(samples, -1)[:, :n]


def compare(
    a: np.ndarray,
    b: np.ndarray,
    *,
    confidence: float = 0.95,
    samples: int = 1000,
    block: int | None = None,
    min_block: int = 1,
) -> Comparison:
    """Relative RMSE difference of ``a`` against ``b`` (per-init MSEs on the same inits) with
    its bootstrap interval. Inits where either is NaN are left out of both."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired errors must have one shape: {a.shape} vs {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = len(a)
    if n == 0 or not b.mean() > 0:
        nan = float("nan")
        return Comparison(nan, nan, nan, confidence, 0, n)
    est = math.sqrt(a.mean() / b.mean()) - 1
    blk = block or block_length(a - b, min_block)
    blk = max(1, min(blk, n))
    idx = resample_indices(n, blk, samples)
    ratio = np.sqrt(a[idx].mean(axis=1) / np.maximum(b[idx].mean(axis=1), 1e-300)) - 1
    lo, hi = np.quantile(ratio, [1 - confidence, confidence])
    return Comparison(float(est), float(lo), float(hi), confidence, blk, n)
