"""The store's time axis and grid identity: spacing, contiguity, gaps."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from wxmodels.errors import DataError

__all__ = ["contiguous", "gap_message", "grid_hash", "infer_step_s", "seconds"]

log = logging.getLogger(__name__)


def grid_hash(lat: np.ndarray, lon: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256()
    h.update(np.asarray(lat, np.float64).round(6).tobytes())
    h.update(np.asarray(lon, np.float64).round(6).tobytes())
    return h.hexdigest()[:16]


def seconds(times: np.ndarray) -> np.ndarray:
    return np.asarray(times).astype("datetime64[s]").astype(np.int64)


def infer_step_s(times: np.ndarray) -> int:
    """The most common spacing of ``times`` in seconds; duplicates/disorder raise."""
    d = np.diff(seconds(times))
    if np.any(d <= 0):
        raise DataError("time steps are duplicated or not increasing")
    vals, counts = np.unique(d, return_counts=True)
    return int(vals[np.argmax(counts)])


def contiguous(times: np.ndarray, first: np.datetime64, step_s: int) -> int:
    """How many leading ``times`` follow ``first`` at exactly ``step_s`` spacing."""
    t = seconds(times)
    expected = np.asarray(first, dtype="datetime64[s]").astype(np.int64) + step_s * np.arange(
        len(t)
    )
    bad = np.nonzero(t != expected)[0]
    return int(bad[0]) if len(bad) else len(t)


def gap_message(times: np.ndarray, n: int) -> str | None:
    """The message for steps after the first ``n`` contiguous ones (``None``: no gap)."""
    if n >= len(times):
        return None
    msg = (
        f"gap after {pd.Timestamp(times[n - 1])}: the source continues at "
        f"{pd.Timestamp(times[n])}; {len(times) - n} later steps wait for the missing ones"
    )
    log.warning(msg)
    return msg
