"""The store's time axis and grid identity: spacing, contiguity, gaps."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from wxmodels.errors import DataError

__all__ = ["contiguous", "fill_gaps", "gap_message", "grid_hash", "infer_step_s", "seconds"]

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


def fill_gaps(ds, first: np.datetime64, step_s: int, time: str = "time"):
    """``ds`` on the regular axis from ``first`` to its last step, the steps the source lacks
    as NaN (never filled with values), and the gaps as ``[first missing, last missing, n]``.

    For records with known gaps (winters only, an archive's outage): the store keeps the axis
    regular and the missing steps recorded; every window that touches one is left out of
    training, baselines and scoring (the steps are not complete)."""
    t = seconds(ds[time].values)
    start = int(np.asarray(first, dtype="datetime64[s]").astype(np.int64))
    if len(t) == 0 or ((len(t) - 1) * step_s + start == t[-1] and t[0] == start):
        return ds, []
    if (t - start).min() < 0 or np.any((t - start) % step_s):
        raise DataError(
            f"steps off the store's {step_s / 3600:g} h axis from {pd.Timestamp(first)}: "
            "cannot record them around a gap"
        )
    axis = np.arange(start, t[-1] + 1, step_s)
    present = np.isin(axis, t)
    gaps, k = [], 0
    while k < len(axis):
        if present[k]:
            k += 1
            continue
        j = k
        while j < len(axis) and not present[j]:
            j += 1
        gaps.append(
            [
                str(pd.Timestamp(axis[k], unit="s")),
                str(pd.Timestamp(axis[j - 1], unit="s")),
                int(j - k),
            ]
        )
        k = j
    full = ds.reindex({time: axis.astype("datetime64[s]").astype("datetime64[ns]")})
    return full, gaps
