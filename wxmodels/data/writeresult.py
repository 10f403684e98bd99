"""What a write pass returns: the chunks' contributions folded into one result (hashes, NaN
counts, extremes, moments and the climatology accumulators), and the checks and statistics
updates the store makes from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wxmodels.data.stats import ClimAccumulator, Moments
from wxmodels.errors import DataError
from wxmodels.schema import get_variable

__all__ = ["Fold", "WriteResult", "welford"]


def welford(
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


class Fold:
    """Combines the chunks' contributions in any order (they arrive as tasks finish): sums,
    extremes and moments are order-free; the tendency across a chunk boundary is added once
    both neighbours are in, and only then are their edge steps dropped."""

    def __init__(self, sizes: Sequence[int], nv: int, shape: tuple[int, int], harmonics) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        total = int(self.offsets[-1])
        self.hash = np.zeros(total, np.uint64)
        self.nan_step = np.zeros((total, nv), np.int64)
        self.nan_point = np.zeros((nv, *shape), np.int64)
        self.vmin = np.full(nv, np.inf)
        self.vmax = np.full(nv, -np.inf)
        self.mom: tuple | None = None
        self.dmom: tuple | None = None
        self.clim = ClimAccumulator(nv, shape, *harmonics)
        self.firsts: dict[int, np.ndarray] = {}
        self.lasts: dict[int, np.ndarray] = {}
        self.n_blocks = len(sizes)
        self.seen = 0

    def add(self, b: dict[str, Any]) -> None:
        i = b["index"]
        a, z = self.offsets[i], self.offsets[i + 1]
        self.hash[a:z] = b["hash"]
        self.nan_step[a:z] = b["nan_step"]
        self.nan_point += b["nan_point"]
        self.vmin = np.minimum(self.vmin, b["min"])
        self.vmax = np.maximum(self.vmax, b["max"])
        self.mom = _chan(self.mom, b["mom"])
        self.dmom = _chan(self.dmom, b["dmom"])
        c = self.clim
        c.xtx += b["xtx"]
        c.xty += b["xty"]
        c.n += b["used"]
        c.span = [min(c.span[0], b["span"][0]), max(c.span[1], b["span"][1])]
        self.firsts[i], self.lasts[i] = b["first"], b["last"]
        for left in (i - 1, i):  # the boundaries this chunk closes
            if left in self.lasts and left + 1 in self.firsts:
                edge = welford((self.firsts[left + 1] - self.lasts[left])[None])
                self.dmom = _chan(self.dmom, edge)
                # counted: keep only the pass's outer steps (the first chunk's first step,
                # the last chunk's last), which a boundary never is
                del self.lasts[left], self.firsts[left + 1]
        self.seen += 1

    def total(self) -> dict[str, Any]:
        if self.seen != self.n_blocks:
            raise RuntimeError(f"write pass: {self.seen} of {self.n_blocks} chunks folded")
        return {
            "hash": self.hash,
            "nan_point": self.nan_point,
            "nan_step": self.nan_step,
            "min": self.vmin,
            "max": self.vmax,
            "mom": self.mom,
            "dmom": self.dmom,
            "first": self.firsts[0],
            "last": self.lasts[self.n_blocks - 1],
            "n": int(self.offsets[-1]),
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
            merge("d", *welford(np.stack(edges)))
