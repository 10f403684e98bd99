"""One pass over new data: write it, and in the same pass validate it, hash every step and
accumulate the statistics, so each source chunk is read and decoded once.

xarray creates the arrays and writes the coordinates (``to_zarr(compute=False)``); the data is
then written by :func:`_block`, one Dask task per time chunk that holds every variable of the
chunk, computes its statistics and writes it into the Zarr arrays. One task per chunk (rather
than a write task per variable beside a statistics task) keeps the GIL hand-offs and the
scheduling overhead of the pass close to those of a plain ``to_zarr``.
"""

from __future__ import annotations

import asyncio
import warnings
import zlib
from dataclasses import dataclass, field

import dask
import dask.array
import numpy as np
import xarray as xr
from zarr.core.sync import _get_loop as zarr_loop

from wxmodels.data.stats import ClimAccumulator, Moments
from wxmodels.errors import DataError
from wxmodels.schema import TIME, get_variable

__all__ = ["WriteResult", "hash_steps", "run"]

_NAN = np.float32(np.nan)


def hash_steps(block: np.ndarray) -> np.ndarray:
    """A 64-bit content fingerprint per step of ``block (T, V, H, W)`` (NaN payloads unified):
    CRC-32 of the step's bytes in the high half, their sum as uint32 words in the low half.

    It detects changed values (revisions), not adversaries: ~6 GB/s where a cryptographic
    hash would cost as much as the rest of the write pass.
    """
    x = np.ascontiguousarray(block, dtype=np.float32)
    if np.isnan(x).any():  # one NaN bit pattern, whatever the source wrote
        x = np.where(np.isnan(x), _NAN, x)
    words = x.reshape(x.shape[0], -1).view(np.uint32)
    sums = words.sum(axis=1, dtype=np.uint64) & np.uint64(0xFFFFFFFF)
    out = np.empty(x.shape[0], np.uint64)
    for t in range(x.shape[0]):
        out[t] = (np.uint64(zlib.crc32(memoryview(words[t]))) << np.uint64(32)) | sums[t]
    return out


def _welford(
    x: np.ndarray, isnan: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per variable ``(n, mean, M2)`` of ``x (T, V, ...)`` over finite values.

    Sums and sums of squares accumulate in float64 (``M2 = S2 - n mean^2``); the values are
    physical fields whose mean^2 is at most ~1e10 (pressure), well inside float64's precision.
    """
    x = x.reshape(x.shape[0], x.shape[1], -1)
    if isnan is None:
        isnan = np.isnan(x)
    if isnan.any():
        x = np.where(isnan, np.float32(0), x)
        n = (~isnan).sum(axis=(0, 2)).astype(np.float64)
    else:
        n = np.full(x.shape[1], float(x.shape[0] * x.shape[2]))
    s1 = x.sum(axis=(0, 2), dtype=np.float64)
    s2 = np.einsum("tvp,tvp->v", x, x, dtype=np.float64)
    mean = np.where(n > 0, s1 / np.maximum(n, 1), 0.0)
    return n, mean, np.maximum(s2 - n * mean * mean, 0.0)


def _start_write(targets: list, x: np.ndarray, start: int):
    """Start writing every variable of a chunk on zarr's I/O loop and return the future, so
    that the statistics are computed while the chunks are encoded and stored (zarr's async
    API encodes the variables concurrently)."""
    region = slice(start, start + x.shape[0])

    async def write_all() -> None:
        await asyncio.gather(
            *[arr.async_array.setitem(region, x[:, v]) for v, arr in enumerate(targets)]
        )

    return asyncio.run_coroutine_threadsafe(write_all(), zarr_loop())


def _block(
    x: np.ndarray,
    hours: np.ndarray,
    valid: np.ndarray | None,
    harmonics: tuple[int, int],
    targets: list | None = None,
    start: int = 0,
) -> dict:
    """Statistics of one time chunk ``x (T, V, H, W)``, written to ``targets[v][start:]``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    pending = _start_write(targets, x, start) if targets is not None else None
    t, nv, h, w = x.shape
    flat = x.reshape(t, nv, h * w)
    isnan = np.isnan(flat)
    anynan = bool(isnan.any())
    nan_step = isnan.sum(axis=2)  # (T, V)
    clim = ClimAccumulator(nv, (h, w), *harmonics)
    if valid is None:
        # first write: the domain is not known yet; a step is complete when it has no more
        # NaNs than the least-NaN step of this chunk (the static mask)
        complete = nan_step <= nan_step.min(axis=0, keepdims=True)
        dom = ~isnan.all(axis=(0, 1)).reshape(h, w)
        if complete.all():
            clim.add(x, hours, dom)
        else:
            for v in range(nv):
                sel = complete[:, v]
                sub = ClimAccumulator(1, (h, w), *harmonics)
                sub.add(x[sel, v : v + 1], hours[sel], dom)
                clim.xtx[v], clim.xty[v], clim.n[v] = sub.xtx[0], sub.xty[0], sub.n[0]
            clim.span = [float(hours[0]), float(hours[-1])]
    else:
        clim.add(x, hours, valid)
    if anynan:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a block inside a gap: all NaN
            vmin = np.nanmin(flat, axis=(0, 2))
            vmax = np.nanmax(flat, axis=(0, 2))
        vmin = np.where(np.isnan(vmin), np.inf, vmin)
        vmax = np.where(np.isnan(vmax), -np.inf, vmax)
    else:
        vmin, vmax = flat.min(axis=(0, 2)), flat.max(axis=(0, 2))
    out = {
        "hash": hash_steps(x),
        "nan_point": isnan.sum(axis=0).reshape(nv, h, w),
        "nan_step": nan_step,
        "min": vmin,
        "max": vmax,
        "mom": _welford(flat, isnan),
        "dmom": _welford(np.diff(flat, axis=0)) if t > 1 else None,
        "first": x[0],
        "last": x[-1],
        "clim": clim.to_arrays(),
        "n": t,
    }
    if pending is not None:
        pending.result()  # re-raises a failed write
    return out


def _chan(a: tuple | None, b: tuple | None) -> tuple | None:
    """Merge two per-variable ``(n, mean, M2)`` (Chan et al.)."""
    if a is None:
        return b
    if b is None:
        return a
    na, ma, qa = a
    nb, mb, qb = b
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = mb - ma
        mean = np.where(n > 0, ma + delta * nb / np.maximum(n, 1), 0.0)
        q = qa + qb + np.where(n > 0, delta * delta * na * nb / np.maximum(n, 1), 0.0)
    return n, mean, q


def _merge(a: dict, b: dict) -> dict:
    """Combine the results of two adjacent chunks (``a`` before ``b``); the tendency across
    their boundary is added, and only the outer first/last steps are kept, so that a tree of
    merges holds O(log n) partial results instead of one per chunk."""
    clim = ClimAccumulator.from_arrays(a["clim"])
    clim.merge(ClimAccumulator.from_arrays(b["clim"]))
    edge = _welford((b["first"] - a["last"])[None])
    return {
        "hash": np.concatenate([a["hash"], b["hash"]]),
        "nan_point": a["nan_point"] + b["nan_point"],
        "nan_step": np.concatenate([a["nan_step"], b["nan_step"]]),
        "min": np.minimum(a["min"], b["min"]),
        "max": np.maximum(a["max"], b["max"]),
        "mom": _chan(a["mom"], b["mom"]),
        "dmom": _chan(_chan(a["dmom"], b["dmom"]), edge),
        "first": a["first"],
        "last": b["last"],
        "clim": clim.to_arrays(),
        "n": a["n"] + b["n"],
    }


@dataclass
class WriteResult:
    """Combined per-chunk results of a write pass."""

    blocks: list[dict]
    clim: ClimAccumulator
    hashes: np.ndarray
    variables: list[str] = field(default_factory=list)

    def valid_from_data(self, shape: tuple[int, int]) -> np.ndarray:
        """Points finite at some step for every variable (the static domain)."""
        total = sum(b["n"] for b in self.blocks)
        nan_point = sum(b["nan_point"] for b in self.blocks)
        valid = (nan_point < total).all(axis=0)
        if not valid.any():
            raise DataError("no grid point has data for every variable")
        return valid

    def check(
        self,
        variables: list[str],
        valid: np.ndarray,
        times: np.ndarray,
        *,
        max_nan_fraction: float,
        where: str,
        allow_gaps: bool = False,
    ) -> list[str]:
        """Raise :class:`DataError` on NaN-only variables, too many NaNs inside the domain or
        implausible values; return the ``variable@time`` steps that are NaN in the domain.

        ``allow_gaps``: steps where every variable is missing are a declared gap (recorded by
        the caller as ranges): they count neither towards the NaN fraction nor as missing."""
        total = sum(b["n"] for b in self.blocks)
        vmin = np.min([b["min"] for b in self.blocks], axis=0)
        vmax = np.max([b["max"] for b in self.blocks], axis=0)
        nan_point = sum(b["nan_point"] for b in self.blocks)
        n_gap = 0
        if allow_gaps:
            n_gap = sum(int((b["nan_step"] >= valid.size).all(axis=1).sum()) for b in self.blocks)
            # a gap step is NaN at every point: take it out of the per-point counts
            nan_point = nan_point - n_gap
            total -= n_gap
        inside = valid.sum() * total
        for i, v in enumerate(variables):
            var = get_variable(v)
            if nan_point[i].min() >= total:
                raise DataError(f"{where}: {v} is NaN everywhere")
            frac = float(nan_point[i][valid].sum()) / max(inside, 1)
            if frac > max_nan_fraction:
                raise DataError(
                    f"{where}: {v} has {frac:.1%} NaNs inside its domain "
                    f"(limit {max_nan_fraction:.1%})"
                )
            if vmin[i] < var.valid_min or vmax[i] > var.valid_max:
                hint = (
                    " (looks like degC: set `units: {name: degC}`)"
                    if (var.units == "K" and vmax[i] < 100)
                    else ""
                )
                raise DataError(
                    f"{where}: {v} ranges {vmin[i]:.4g}..{vmax[i]:.4g} {var.units}, outside "
                    f"the plausible {var.valid_min:g}..{var.valid_max:g}{hint}"
                )
        return self.missing_steps(variables, valid, times, skip_gaps=allow_gaps)

    def missing_steps(
        self, variables: list[str], valid: np.ndarray, times: np.ndarray, skip_gaps: bool = False
    ) -> list[str]:
        out, k = [], 0
        n_points = valid.size
        for b in self.blocks:
            # a step is missing when every point is NaN (points outside the domain always are)
            all_nan = b["nan_step"] >= n_points  # (T, V)
            if skip_gaps:  # steps missing for every variable are a gap, recorded as a range
                all_nan = all_nan & ~all_nan.all(axis=1, keepdims=True)
            for t, v in zip(*np.nonzero(all_nan), strict=True):
                out.append(f"{variables[v]}@{np.datetime_as_string(times[k + t], 'm')}")
            k += b["n"]
        return out

    def add_to(self, moments: Moments, prev: np.ndarray | None) -> None:
        """Merge the value and tendency moments of this write into ``moments``."""

        def merge(kind: str, n: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
            nn, s1, s2 = ("n", "s1", "s2") if kind == "v" else ("dn", "d1", "d2")
            for v in range(len(n)):
                if n[v] == 0:
                    continue
                if kind == "v" and getattr(moments, nn)[v] == 0:
                    moments.shift[v] = float(mean[v])
                d = mean[v] - (moments.shift[v] if kind == "v" else 0.0)
                getattr(moments, nn)[v] += float(n[v])
                getattr(moments, s1)[v] += float(n[v] * d)
                getattr(moments, s2)[v] += float(m2[v] + n[v] * d * d)

        edges = []
        last = prev
        for b in self.blocks:
            merge("v", *b["mom"])
            if b["dmom"] is not None:
                merge("d", *b["dmom"])
            if last is not None:
                edges.append(b["first"] - last)
            last = b["last"]
        if edges:
            merge("d", *_welford(np.stack(edges)))


def run(
    ds: xr.Dataset,
    targets: list | None,
    start: int,
    *,
    valid: np.ndarray | None,
    prev: np.ndarray | None,
    harmonics: tuple[int, int] = (3, 4),
) -> WriteResult:
    """Write the dask-backed ``ds`` into ``targets`` (Zarr arrays, one per variable, in
    ``ds`` order) from time index ``start``, computing the per-chunk statistics on the way.
    ``targets=None`` computes the statistics only. ``ds``'s time chunks must align with the
    arrays' chunks (each task then owns whole Zarr chunks)."""
    variables = list(ds.data_vars)
    hours = ds[TIME].values.astype("datetime64[s]").astype(np.int64) / 3600.0
    stacked = dask.array.stack([ds[v].data for v in variables], axis=1).rechunk(
        {1: -1, 2: -1, 3: -1}
    )
    pieces = stacked.to_delayed().reshape(-1)
    tasks, k = [], 0
    for piece, n in zip(pieces, stacked.chunks[0], strict=True):
        tasks.append(
            dask.delayed(_block, pure=False)(
                piece, hours[k : k + n], valid, harmonics, targets, start + k
            )
        )
        k += n
    # pairwise tree of merges of adjacent chunks: results are folded as soon as both halves
    # exist, so workers never hold the statistics of every chunk at once
    while len(tasks) > 1:
        tasks = [
            dask.delayed(_merge, pure=False)(tasks[i], tasks[i + 1])
            if i + 1 < len(tasks)
            else tasks[i]
            for i in range(0, len(tasks), 2)
        ]
    (total,) = dask.compute(tasks[0])
    return WriteResult(
        [total],
        ClimAccumulator.from_arrays(total["clim"]),
        total["hash"],
        [str(v) for v in variables],
    )
