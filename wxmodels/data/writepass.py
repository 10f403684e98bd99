"""One pass over new data: write it, and in the same pass validate it, hash every step and
accumulate the statistics, so each source chunk is read and decoded once.

xarray creates the arrays and writes the coordinates (``to_zarr(compute=False)``); the data is
then written by :func:`_block`, one Dask task per time chunk that takes every variable of the
chunk as it was decoded (one contiguous ``(T, H, W)`` array each: no stacked copy), writes each
into its Zarr array and computes the chunk's statistics on the way. A task returns only the
chunk's *contribution* (its climatology products in float32, its counts, hashes and edge steps);
the caller folds the contributions as the tasks finish (:mod:`wxmodels.data.blockrun`), so a
worker holds one chunk and its result at a time, whatever the length of the record.
"""

from __future__ import annotations

import asyncio
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import google_crc32c
import numpy as np
import xarray as xr
from zarr.core.sync import _get_loop as zarr_loop

from wxmodels import alloc
from wxmodels.data import blockrun
from wxmodels.data.stats import climatology_features
from wxmodels.data.writeresult import Fold, WriteResult
from wxmodels.schema import LAT, LON, TIME

__all__ = ["HASHES", "WriteResult", "hash_steps", "run", "step_hashes"]

_NAN = np.float32(np.nan)


HASHES = ("crc32c", "crc32")
"""Step hash schemes (:func:`step_hashes`), the one for new stores first."""
_CRCS: dict[str, Callable[[Any, int], int]] = {
    "crc32c": lambda data, value: google_crc32c.extend(value, data),
    "crc32": zlib.crc32,
}


def step_hashes(
    arrays: Sequence[np.ndarray], scheme: str = HASHES[0], *, nan_free: bool = False
) -> np.ndarray:
    """A 64-bit content fingerprint per step of the variables ``arrays`` (each ``(T, H, W)``,
    in store order; NaN payloads unified): a CRC of the step's bytes (the variables' bytes one
    after the other) in the high half, their sum as uint32 words (modulo 2**32) in the low half.
    ``scheme``: the CRC, ``"crc32c"`` (Castagnoli, in hardware where the CPU has it, ~15 GB/s)
    or ``"crc32"`` (zlib's, ~2 GB/s: stores created before the switch keep it, their
    :attr:`~wxmodels.data.commit.Commit.hash`). ``nan_free``: the caller knows ``arrays`` hold
    no NaN (skips looking for them).

    It detects changed values (revisions), not adversaries: a cryptographic hash would cost
    as much as the rest of the write pass. The CRC is chained variable by variable, so no
    stacked copy of the step is needed.
    """
    crc_of = _CRCS.get(scheme)
    if crc_of is None:
        raise ValueError(f"unknown step hash {scheme!r} (known: {', '.join(HASHES)})")
    t = arrays[0].shape[0]
    crc = [0] * t
    sums = np.zeros(t, np.uint32)
    for a in arrays:
        x = np.ascontiguousarray(a, dtype=np.float32)
        if not nan_free and np.isnan(x).any():  # one NaN bit pattern, whatever the source wrote
            x = np.where(np.isnan(x), _NAN, x)
        words = x.reshape(t, -1).view(np.uint32)
        sums += words.sum(axis=1, dtype=np.uint32)  # wraps: the sum modulo 2**32
        for i in range(t):
            crc[i] = crc_of(words[i], crc[i])
    return (np.asarray(crc, np.uint64) << np.uint64(32)) | sums.astype(np.uint64)


def hash_steps(block: np.ndarray, scheme: str = HASHES[0]) -> np.ndarray:
    """:func:`step_hashes` of ``block (T, V, H, W)``."""
    return step_hashes([block[:, v] for v in range(block.shape[1])], scheme)


def _moments(x: np.ndarray, nan: np.ndarray | None) -> tuple[float, float, float]:
    """``(n, mean, M2)`` of one variable's finite values ``x`` (any shape, contiguous)."""
    if nan is not None:
        x = np.where(nan, np.float32(0), x)
        n = float(x.size - np.count_nonzero(nan))
    else:
        n = float(x.size)
    x64 = x.reshape(-1).astype(np.float64)
    s1 = float(x64.sum())
    s2 = float(np.einsum("i,i->", x64, x64))  # einsum: no BLAS threads inside a worker
    mean = s1 / n if n > 0 else 0.0
    return n, mean, max(s2 - n * mean * mean, 0.0)


Moment = tuple[float, float, float]


def _moments_nan_free(x: np.ndarray) -> tuple[Moment, Moment | None]:
    """``(n, mean, M2)`` of ``x (T, ...)`` (contiguous float32, no NaN) and of its steps'
    differences (``None`` for one step), in float32 passes over one reused buffer: the values
    shifted by the first step's mean (so that the sum of squares does not cancel), summed
    pairwise (numpy's float32 sums; relative error ~1e-7 on these sizes)."""
    t = x.shape[0]
    y = x.reshape(t, -1)
    c = np.float32(y[0].mean(dtype=np.float64))
    buf = np.subtract(y, c)
    n = float(buf.size)
    s1 = float(buf.sum())
    s2 = float(np.square(buf, out=buf).sum())
    m = s1 / n
    mom = (n, m + float(c), max(s2 - n * m * m, 0.0))
    if t < 2:
        return mom, None
    d = np.subtract(y[1:], y[:-1], out=buf[1:])
    nd = float(d.size)
    d1 = float(d.sum())
    d2 = float(np.square(d, out=d).sum())
    md = d1 / nd
    return mom, (nd, md, max(d2 - nd * md * md, 0.0))


def _start_write(targets: list, arrays: Sequence[np.ndarray], start: int) -> Any:
    """Start writing every variable of a chunk on zarr's I/O loop and return the future, so
    that the statistics are computed while the chunks are encoded and stored (zarr's async
    API encodes the variables concurrently)."""
    region = slice(start, start + arrays[0].shape[0])

    async def write_all() -> None:
        await asyncio.gather(
            *[arr.async_array.setitem(region, a) for a, arr in zip(arrays, targets, strict=True)]
        )

    return asyncio.run_coroutine_threadsafe(write_all(), zarr_loop())


def _xty(ft: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """``out = ft @ y`` (``(P, T) @ (T, N)``, float32) in column slices small enough for
    OpenBLAS to run each on the calling thread (it threads a GEMM from ``m*n*k`` of 2**18 on):
    its helper threads would spin against the pass's other threads and zarr's codecs (on two
    busy cores this product took 10x longer threaded than on one thread)."""
    p, k = ft.shape
    step = max(64, (2**18 - 1) // max(p * k, 1))
    for a in range(0, y.shape[1], step):
        np.matmul(ft, y[:, a : a + step], out=out[:, a : a + step])


class Targets:
    """The Zarr arrays a write pass fills, passed to its tasks as one opaque argument (Dask
    would otherwise walk the arrays' dataclass fields for every task)."""

    __slots__ = ("arrays",)

    def __init__(self, arrays: list) -> None:
        self.arrays = arrays


def _block(
    hours: np.ndarray,
    valid: np.ndarray | None,
    harmonics: tuple[int, int],
    scheme: str,
    targets: Targets | None,
    start: int,
    index: int,
    *arrays: np.ndarray,
) -> dict[str, Any]:
    """Write one time chunk (``arrays``: one ``(T, H, W)`` array per variable) to
    ``targets[v][start:]`` and return its contribution to the pass's statistics.

    A step enters a variable's climatology if it is complete over the domain (``valid``; on
    the first write, where the domain is not known yet, over the points that have data in this
    chunk, and only steps with no more NaNs than the chunk's least-NaN step).
    """
    xs = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
    del arrays
    pending = _start_write(targets.arrays, xs, start) if targets is not None else None
    nv = len(xs)
    t, h, w = xs[0].shape
    nan_step = np.zeros((t, nv), np.int64)
    nan_point = np.zeros((nv, h, w), np.int32)
    vmin, vmax = np.empty(nv), np.empty(nv)
    mom = [np.zeros(nv), np.zeros(nv), np.zeros(nv)]
    dmom = [np.zeros(nv), np.zeros(nv), np.zeros(nv)]
    nans: list[np.ndarray | None] = []  # per variable: its NaN mask, None when it has none
    for v, x in enumerate(xs):
        lo, hi = x.min(), x.max()  # a NaN anywhere makes both NaN
        if not (np.isnan(lo) or np.isnan(hi)):  # the common case: no mask needed
            nans.append(None)
            vmin[v], vmax[v] = lo, hi
            values, steps = _moments_nan_free(x)
            for acc, val in zip(mom, values, strict=True):
                acc[v] = val
            for acc, val in zip(dmom, steps or (), strict=False):  # None for one step
                acc[v] = val
            continue
        m = np.isnan(x)
        nans.append(m)
        nan_step[:, v] = m.reshape(t, -1).sum(axis=1)
        nan_point[v] = m.sum(axis=0)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a block inside a gap
            lo, hi = np.nanmin(x), np.nanmax(x)
        vmin[v] = np.inf if np.isnan(lo) else lo
        vmax[v] = -np.inf if np.isnan(hi) else hi
        for acc, val in zip(mom, _moments(x, m), strict=True):
            acc[v] = val
        if t > 1:
            d = np.diff(x, axis=0)
            for acc, val in zip(dmom, _moments(d, np.isnan(d)), strict=True):
                acc[v] = val
            del d
    # climatology: the normal-equation products of this chunk, X'y in float32 (what the
    # accumulator adds; exact in float64 when the caller folds them)
    feats = climatology_features(hours, *harmonics)  # (T, P)
    p = feats.shape[1]
    xtx = np.zeros((nv, p, p))
    xty = np.zeros((nv, p, h * w), np.float32)
    used = np.zeros(nv)
    dom = valid
    if valid is None:
        dom = ~np.logical_and.reduce(
            [np.zeros((h, w), bool) if m is None else m.all(axis=0) for m in nans]
        )
    for v, (x, mask) in enumerate(zip(xs, nans, strict=True)):
        sel = np.ones(t, bool)
        if valid is None:  # complete steps: no more NaNs than the least-NaN one
            sel = nan_step[:, v] <= nan_step[:, v].min()
        y = x.reshape(t, -1)
        if mask is not None and mask[sel].any():
            sel = sel & ~mask[:, dom].any(axis=1)
            y = np.nan_to_num(y[sel])
        elif not sel.all():
            y = y[sel]
        if not sel.any():
            continue
        f = feats[sel]
        xtx[v] = f.T @ f
        _xty(np.ascontiguousarray(f.T, dtype=np.float32), y, xty[v])
        used[v] = sel.sum()
    out = {
        "index": index,
        "n": t,
        "hash": step_hashes(xs, scheme, nan_free=all(m is None for m in nans)),
        "nan_point": nan_point,
        "nan_step": nan_step,
        "min": vmin,
        "max": vmax,
        "mom": tuple(mom),
        "dmom": tuple(dmom) if t > 1 else None,
        "first": np.stack([x[0] for x in xs]),
        "last": np.stack([x[-1] for x in xs]),
        "xtx": xtx,
        "xty": xty.reshape(nv, p, h, w),
        "used": used,
        "span": (float(hours[0]), float(hours[-1])),
    }
    del nans
    if pending is not None:
        pending.result()  # re-raises a failed write
    del xs, pending
    alloc.trim()
    return out


def run(
    ds: xr.Dataset,
    targets: list | None,
    start: int,
    *,
    valid: np.ndarray | None,
    prev: np.ndarray | None,
    harmonics: tuple[int, int] = (3, 4),
    scheme: str = HASHES[0],
    paused_timeout_s: float = blockrun.PAUSED_TIMEOUT_S,
) -> WriteResult:
    """Write the dask-backed ``ds`` into ``targets`` (Zarr arrays, one per variable, in
    ``ds`` order) from time index ``start``, computing the per-chunk statistics on the way.
    ``targets=None`` computes the statistics only. ``ds``'s time chunks must align with the
    arrays' chunks (each task then owns whole Zarr chunks).

    The chunks run a few at a time (:func:`wxmodels.data.blockrun.run_blocks`): on threads,
    or on the distributed cluster of the current client, where a worker that stays paused
    (over its memory limit) with no chunk finishing for ``paused_timeout_s`` raises
    :class:`~wxmodels.data.blockrun.PausedWorkerError` instead of waiting forever."""
    import dask

    variables = list(ds.data_vars)
    hours = ds[TIME].values.astype("datetime64[s]").astype(np.int64) / 3600.0
    data = [ds[v].data.rechunk({1: -1, 2: -1}) for v in variables]
    sizes = data[0].chunks[0]
    if any(d.chunks[0] != sizes for d in data):
        raise ValueError("the variables' time chunks differ")
    pieces = [d.to_delayed().reshape(-1) for d in data]
    wrapped = Targets(list(targets)) if targets is not None else None
    tasks, k = [], 0
    for i, n in enumerate(sizes):
        tasks.append(
            dask.delayed(_block, pure=False)(
                hours[k : k + n],
                valid,
                harmonics,
                scheme,
                wrapped,
                start + k,
                i,
                *[p[i] for p in pieces],
            )
        )
        k += n
    shape = (ds.sizes[LAT], ds.sizes[LON])
    fold = Fold(sizes, len(variables), shape, harmonics)
    blockrun.run_blocks(
        tasks,
        fold.add,
        paused_timeout_s=paused_timeout_s,
        chunk_bytes=max(sizes, default=0) * len(variables) * shape[0] * shape[1] * 4,
    )
    total = fold.total()
    return WriteResult([total], fold.clim, total["hash"], [str(v) for v in variables])
