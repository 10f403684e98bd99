"""Fields loaded from the store into memory, time splits and normalisation statistics.

Shapes: ``data`` is ``(T, V, H, W)`` float32 in physical units, NaN outside the domain.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wxmodels.config.data import SplitConfig
from wxmodels.config.stream import StreamConfig
from wxmodels.data.lazy import StoreArray, iter_blocks
from wxmodels.data.stats import ClimAccumulator, Moments
from wxmodels.data.store import Store
from wxmodels.errors import DataError
from wxmodels.schema import LAT, LON, TIME
from wxmodels.utils import stable_hash

__all__ = ["Fields", "Split", "compute_stats", "fit_climatology", "load_fields", "make_split"]


@dataclass
class Fields:
    """A store's committed fields in memory.

    Attributes:
        data: ``(T, V, H, W)`` float32, physical units: in memory, or a
            :class:`~wxmodels.data.lazy.StoreArray` read as it is indexed (streamed).
        hours: ``(T,)`` float64 hours since 1970-01-01.
        variables: canonical names (V).
        lat, lon: ``(H,)``, ``(W,)`` coordinates.
        step_hours: time step.
        valid: ``(H, W)`` bool, points that are finite at some step for every variable.
        complete: ``(T,)`` bool, steps with every valid point finite.
        store_url, store_version: where the fields came from.
    """

    data: np.ndarray
    hours: np.ndarray
    variables: list[str]
    lat: np.ndarray
    lon: np.ndarray
    step_hours: float
    valid: np.ndarray
    complete: np.ndarray
    store_url: str = ""
    store_version: str = ""

    @property
    def streamed(self) -> bool:
        """``data`` is read from the store as it is used (not in memory)."""
        return isinstance(self.data, StoreArray)

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.to_datetime(self.hours * 3600.0, unit="s")

    def index_of(self, time: Any) -> int:
        """Index of the step at ``time`` (exact match), else :class:`DataError`."""
        h = pd.Timestamp(time).value / 3.6e12
        hits = np.nonzero(np.abs(self.hours - h) < 1e-6)[0]
        if not len(hits):
            raise DataError(f"{pd.Timestamp(time)} is not a committed time step of the store")
        return int(hits[0])

    def first_from(self, time: Any) -> int:
        """Index of the first step at or after ``time`` (a split date need not be a step: the
        store may miss it, or start or end around it)."""
        return int(np.searchsorted(self.hours, pd.Timestamp(time).value / 3.6e12 - 1e-6))

    def windows_ok(self, inits: np.ndarray, history: int, lead_steps: int) -> np.ndarray:
        """Which inits have history and targets in range and complete."""
        inits = np.asarray(inits)
        ok = (inits - history + 1 >= 0) & (inits + lead_steps < len(self.hours))
        cum = np.concatenate([[0], np.cumsum(~self.complete)])
        lo = np.clip(inits - history + 1, 0, len(self.hours))
        hi = np.clip(inits + lead_steps + 1, 0, len(self.hours))
        return ok & (cum[hi] - cum[lo] == 0)


def load_fields(
    store: Store,
    variables: list[str],
    *,
    start: Any = None,
    end: Any = None,
    stream: StreamConfig | None = None,
    cache_dir: str | Path | None = None,
) -> Fields:
    """Load ``variables`` of the committed store between ``start`` and ``end`` (inclusive).

    With ``stream`` (mode ``stream``, or ``auto`` on fields larger than its threshold) the
    returned ``data`` is a :class:`~wxmodels.data.lazy.StoreArray` read as it is used; the
    valid points and complete steps are then found in one pass over the store's chunks
    (cached in ``cache_dir`` per store version, so the stages of one cycle pay it once).
    """
    ds = store.open()
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise DataError(f"store {store.url} lacks {missing} (has {list(ds.data_vars)})")
    if start is not None or end is not None:
        ds = ds.sel({TIME: slice(start, end)})
    hours = ds[TIME].values.astype("datetime64[s]").astype(np.int64) / 3600.0
    step = float(np.median(np.diff(hours))) if len(hours) > 1 else 1.0
    grid = (ds.sizes[LAT], ds.sizes[LON])
    nbytes = len(hours) * len(variables) * grid[0] * grid[1] * 4
    version = ds.attrs.get("wxc_store_version", "")
    if _streams(stream, nbytes, start, end):
        assert stream is not None
        chunk = ds[variables[0]].encoding.get("chunks", (24,))[0] or 24
        data: Any = StoreArray(
            store.url,
            store.storage_options,
            list(variables),
            len(hours),
            grid,
            int(chunk),
            cache_mb=stream.cache_mb,
            max_read_mb=stream.max_read_mb,
        )
        # the scan's cache key: the steps' content hashes (the version names the time range)
        content = hashlib.sha256(np.asarray(store.step_hashes()).tobytes()).hexdigest()
        valid, complete = _scan(data, f"{version}:{content}", cache_dir)
    else:
        data = np.stack(
            [ds[v].transpose(TIME, LAT, LON).values.astype(np.float32) for v in variables],
            axis=1,
        )
        finite = np.isfinite(data)
        valid = finite.any(axis=0).all(axis=0)
        if not valid.any():
            raise DataError(f"store {store.url}: no grid point is valid for every variable")
        complete = finite[:, :, valid].all(axis=(1, 2))
    return Fields(
        data,
        hours,
        list(variables),
        ds[LAT].values,
        ds[LON].values,
        step,
        np.asarray(valid, bool),
        np.asarray(complete, bool),
        store.url,
        version,
    )


def _streams(stream: StreamConfig | None, nbytes: int, start: Any, end: Any) -> bool:
    if stream is None or stream.mode == "memory" or start is not None or end is not None:
        return False
    return stream.mode == "stream" or nbytes > stream.auto_above_mb * 2**20


def _scan(
    data: StoreArray, version: str, cache_dir: str | Path | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(valid (H, W), complete (T,))`` of streamed fields in one pass over the chunks.

    A step's missing cells are kept as a pattern (one packed mask per distinct pattern: the
    domain's outside, plus one per step with a hole), so the pass holds one chunk and the
    patterns, never the archive.
    """
    key = stable_hash([data.store_url, version, data.variables, data.shape], 16)
    path = Path(cache_dir) / f"fields-{key}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return z["valid"].astype(bool), z["complete"].astype(bool)
    t, _, h, w = data.shape
    any_finite = np.zeros(data.shape[1:], bool)
    patterns: dict[bytes, int] = {}
    of_step = np.empty(t, np.int64)
    for lo, hi in iter_blocks(data, 0, t):
        block = np.isfinite(data[lo:hi])
        any_finite |= block.any(axis=0)
        holes = ~block.all(axis=1)  # (n, H, W): a variable missing
        for k in range(hi - lo):
            packed = np.packbits(holes[k]).tobytes()
            of_step[lo + k] = patterns.setdefault(packed, len(patterns))
    valid = np.asarray(any_finite.all(axis=0), bool)
    if not valid.any():
        raise DataError(f"store {data.store_url}: no grid point is valid for every variable")
    hole_at_valid = np.zeros(len(patterns), bool)
    for packed, j in patterns.items():
        mask = np.unpackbits(np.frombuffer(packed, np.uint8), count=h * w).reshape(h, w)
        hole_at_valid[j] = bool((mask.astype(bool) & valid).any())
    complete = ~hole_at_valid[of_step]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.partial.npz")
        np.savez(tmp, valid=valid, complete=complete)
        tmp.replace(path)
    return valid, complete


@dataclass
class Split:
    """Index ranges ``[start, stop)`` of the train, validation and test parts."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def inits(
        self, fields: Fields, part: str, *, history: int, lead_steps: int, stride: int = 1
    ) -> np.ndarray:
        """Init indices whose history and targets (up to ``lead_steps``) lie in ``part``."""
        lo, hi = getattr(self, part)
        idx = np.arange(lo + history - 1, hi - lead_steps, stride)
        return idx[fields.windows_ok(idx, history, lead_steps)]

    def describe(self, fields: Fields) -> dict[str, list[str]]:
        t = fields.times
        return {
            p: [str(t[a]), str(t[b - 1])]
            for p, (a, b) in (("train", self.train), ("val", self.val), ("test", self.test))
        }


def make_split(fields: Fields, cfg: SplitConfig) -> Split:
    """Split the time axis into train / gap / validation / gap / test."""
    n = len(fields.hours)
    gap = round(cfg.gap_hours / fields.step_hours)
    if cfg.val_start is not None and cfg.test_start is not None:
        val_lo, test_lo = fields.first_from(cfg.val_start), fields.first_from(cfg.test_start)
        train, val = (0, val_lo - gap), (val_lo, test_lo - gap)
        return _checked(Split(train, val, (test_lo, n)), n, cfg)
    if cfg.test_start is not None:
        test_lo = fields.first_from(cfg.test_start)
        rest = test_lo - 2 * gap
        n_val = max(1, int(rest * cfg.val_fraction / (cfg.train_fraction + cfg.val_fraction)))
        train = (0, rest - n_val)
    else:
        n_train = int(n * cfg.train_fraction)
        n_val = int(n * cfg.val_fraction)
        train = (0, n_train)
        test_lo = n_train + gap + n_val + gap
    val = (train[1] + gap, train[1] + gap + n_val)
    return _checked(Split(train, val, (test_lo, n)), n, cfg)


def _checked(split: Split, n: int, cfg: SplitConfig) -> Split:
    train, val, test = split.train, split.val, split.test
    if train[1] - train[0] < 8 or val[1] - val[0] < 2 or test[1] - test[0] < 2:
        raise DataError(
            f"the store's {n} steps are too few for the split {cfg.model_dump()} "
            f"(train {train}, val {val}, test {test})"
        )
    return split


def compute_stats(fields: Fields, part: tuple[int, int]) -> dict[str, list[float]]:
    """Per-variable mean, std and std of one-step tendencies over ``part``, valid points only
    (accumulated block by block: bounded memory on streamed fields)."""
    mom = Moments.empty(len(fields.variables))
    prev = None
    for lo, hi in iter_blocks(fields.data, part[0], part[1]):
        block = np.asarray(fields.data[lo:hi])
        mom.add(block, prev, fields.valid)
        prev = block[-1]
    return mom.normalisation()


def fit_climatology(
    fields: Fields, part: tuple[int, int], n_annual: int = 3, n_diurnal: int = 4
) -> ClimAccumulator:
    """The harmonic climatology (see :mod:`wxmodels.data.stats`) of ``part`` only.

    Verification uses the training window's climatology, never one that has seen the test
    window (as WeatherBench 2 scores 2020 against a 1990-2019 climatology). Records shorter
    than a year fall back to a smoothed hour-of-day climatology.
    """
    acc = ClimAccumulator(len(fields.variables), fields.valid.shape, n_annual, n_diurnal)
    for lo, hi in iter_blocks(fields.data, part[0], part[1]):
        acc.add(np.asarray(fields.data[lo:hi]), fields.hours[lo:hi], fields.valid)
    return acc
