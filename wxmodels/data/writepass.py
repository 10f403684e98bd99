"""One pass over new data: write it, and in the same pass validate it, hash every step and
accumulate the statistics, so each source chunk is read and decoded once.

The per-chunk work happens in :func:`_block` (a Dask task per time chunk that shares its input
keys with the Zarr write), and the small per-chunk results are combined on the client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import dask
import numpy as np
import xarray as xr

from wxmodels.data.stats import ClimAccumulator, Moments
from wxmodels.errors import DataError
from wxmodels.schema import TIME, get_variable

__all__ = ["WriteResult", "hash_steps", "run"]

_NAN = np.float32(np.nan)


def hash_steps(block: np.ndarray) -> np.ndarray:
    """A 64-bit content hash per step of ``block (T, V, H, W)`` (NaN payloads unified)."""
    x = np.where(np.isnan(block), _NAN, block).astype(np.float32, copy=False)
    out = np.empty(x.shape[0], np.uint64)
    for t in range(x.shape[0]):
        out[t] = int.from_bytes(
            hashlib.blake2b(np.ascontiguousarray(x[t]).tobytes(), digest_size=8).digest(), "little"
        )
    return out


def _welford(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per variable ``(n, mean, M2)`` of ``x (T, V, ...)`` over finite values."""
    x = x.reshape(x.shape[0], x.shape[1], -1).astype(np.float64)
    ok = np.isfinite(x)
    n = ok.sum(axis=(0, 2)).astype(np.float64)
    s = np.where(ok, x, 0.0).sum(axis=(0, 2))
    mean = np.where(n > 0, s / np.maximum(n, 1), 0.0)
    dev = np.where(ok, x - mean[None, :, None], 0.0)
    return n, mean, (dev * dev).sum(axis=(0, 2))


def _block(
    arrays: list[np.ndarray],
    hours: np.ndarray,
    valid: np.ndarray | None,
    harmonics: tuple[int, int],
) -> dict:
    x = np.stack(arrays, axis=1)  # (T, V, H, W)
    isnan = np.isnan(x)
    clim = ClimAccumulator(x.shape[1], x.shape[2:], *harmonics)
    if valid is None:
        # first write: the domain is not known yet; a step is complete when it has no more
        # NaNs than the least-NaN step of this chunk (the static mask)
        per_step = isnan.reshape(x.shape[0], x.shape[1], -1).sum(axis=2)
        complete = per_step <= per_step.min(axis=0, keepdims=True)
        dom = ~isnan.all(axis=(0, 1))
        for v in range(x.shape[1]):
            sel = complete[:, v]
            sub = ClimAccumulator(1, x.shape[2:], *harmonics)
            sub.add(x[sel][:, [v]], hours[sel], dom)
            clim.xtx[v], clim.xty[v], clim.n[v] = sub.xtx[0], sub.xty[0], sub.n[0]
        clim.span = [float(hours[0]), float(hours[-1])]
    else:
        clim.add(x, hours, valid)
    with np.errstate(all="ignore"):
        vmin = np.nanmin(np.where(isnan, np.inf, x), axis=(0, 2, 3))
        vmax = np.nanmax(np.where(isnan, -np.inf, x), axis=(0, 2, 3))
    return {
        "hash": hash_steps(x),
        "nan_point": isnan.sum(axis=0),  # (V, H, W)
        "nan_step": isnan.reshape(x.shape[0], x.shape[1], -1).sum(axis=2),  # (T, V) counts
        "min": vmin,
        "max": vmax,
        "mom": _welford(x),
        "dmom": _welford(np.diff(x, axis=0)) if len(x) > 1 else None,
        "first": x[0],
        "last": x[-1],
        "clim": clim.to_arrays(),
        "n": x.shape[0],
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
    ) -> list[str]:
        """Raise :class:`DataError` on NaN-only variables, too many NaNs inside the domain or
        implausible values; return the ``variable@time`` steps that are NaN in the domain."""
        total = sum(b["n"] for b in self.blocks)
        vmin = np.min([b["min"] for b in self.blocks], axis=0)
        vmax = np.max([b["max"] for b in self.blocks], axis=0)
        nan_point = sum(b["nan_point"] for b in self.blocks)
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
        return self.missing_steps(variables, valid, times)

    def missing_steps(
        self, variables: list[str], valid: np.ndarray, times: np.ndarray
    ) -> list[str]:
        out, k = [], 0
        n_points = valid.size
        for b in self.blocks:
            # a step is missing when every point is NaN (points outside the domain always are)
            all_nan = b["nan_step"] >= n_points  # (T, V)
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
    write,
    *,
    valid: np.ndarray | None,
    prev: np.ndarray | None,
    harmonics: tuple[int, int] = (3, 4),
) -> WriteResult:
    """Compute the Zarr ``write`` (a Delayed from ``to_zarr(compute=False)``) of the dask-backed
    ``ds`` together with the per-chunk statistics."""
    variables = list(ds.data_vars)
    hours = ds[TIME].values.astype("datetime64[s]").astype(np.int64) / 3600.0
    chunks = ds[variables[0]].chunks[0]
    tasks, k = [], 0
    for i, n in enumerate(chunks):
        arrays = [ds[v].data.blocks[i] for v in variables]
        tasks.append(dask.delayed(_block)(arrays, hours[k : k + n], valid, harmonics))
        k += n
    _, *blocks = dask.compute(write, *tasks) if write is not None else (None, *dask.compute(*tasks))
    clim = ClimAccumulator.from_arrays(blocks[0]["clim"])
    for b in blocks[1:]:
        clim.merge(ClimAccumulator.from_arrays(b["clim"]))
    hashes = np.concatenate([b["hash"] for b in blocks])
    return WriteResult(blocks, clim, hashes, variables)
