"""The archive as of a tick: the one place where a replay decides what data exists.

A replay never points a stage at the archive. At each tick :meth:`Archive.deliver` writes the
steps valid *before* the tick into a landing directory, one file per source file and period
(yearly files become monthly landing files, as a provider would publish them), and logs what it
served; the scheduled ingest reads only that directory, and statistics, training and the
cycle's baselines read only the store it fills. :func:`as_of` is the same rule for fields in
memory (the live scores' baselines are fitted on what existed at the previous tick).

With a revision scenario a period arrives first as *preliminary* data (the final values plus
noise) and ``lag`` ticks later as *final*, under the same file name: the ingest sees a changed
file whose steps are committed, and the store rewrites them (see :mod:`wxmodels.data.revise`).
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.config.replay import RevisionScenario
from wxmodels.data.fields import Fields
from wxmodels.errors import DataError
from wxmodels.utils import write_json_atomic

__all__ = ["Archive", "Delivery", "as_of", "period_bounds"]

SERVED = "served.jsonl"


def as_of(fields: Fields, t: pd.Timestamp) -> Fields:
    """``fields`` cut to the steps valid before ``t``."""
    n = int(np.searchsorted(fields.hours, pd.Timestamp(t).value / 3.6e12, side="left"))
    if n == 0:
        raise DataError(f"the store holds nothing before {t}")
    return Fields(
        fields.data[:n],
        fields.hours[:n],
        fields.variables,
        fields.lat,
        fields.lon,
        fields.step_hours,
        fields.valid,
        fields.complete[:n],
        fields.store_url,
        fields.store_version,
    )


def period_bounds(
    anchor: pd.Timestamp, every: pd.DateOffset, first: pd.Timestamp, last: pd.Timestamp
) -> list[pd.Timestamp]:
    """Period boundaries ``anchor + k * every`` (k of either sign) covering ``[first, last]``."""
    k = 0
    while anchor + k * every > first:
        k -= 1
    out = []
    while (b := anchor + k * every) <= last:
        out.append(b)
        k += 1
    out.append(b)
    return out


def _time_dim(ds: xr.Dataset, path: str) -> str:
    for d in ds.dims:
        if d in ds.coords and np.issubdtype(ds[d].dtype, np.datetime64):
            return str(d)
    raise DataError(
        f"{path}: no time dimension with dates; a replay needs files with a time coordinate"
    )


@dataclass
class Delivery:
    """What one tick offered: landing files written (final or preliminary), the last step."""

    tick: str
    files: list[str] = field(default_factory=list)
    preliminary: list[str] = field(default_factory=list)
    steps: int = 0
    last: str | None = None


class Archive:
    """Source files served tick by tick into ``landing`` (see the module docstring).

    Args:
        paths: the source's files (glob patterns expanded).
        landing: the landing directory the replay's ingest reads.
        anchor: where the period grid is anchored (the replay's start).
        every: the period (the ingest cadence).
        revisions: the preliminary-then-final scenario, or ``None``.
    """

    def __init__(
        self,
        paths: list[str],
        landing: str | Path,
        anchor: pd.Timestamp,
        every: pd.DateOffset,
        revisions: RevisionScenario | None = None,
    ):
        files = sorted({p for pat in paths for p in glob.glob(pat)})
        if not files:
            raise DataError(f"no source files match {paths}")
        self.files = files
        self.landing = Path(landing)
        self.anchor, self.every, self.revisions = pd.Timestamp(anchor), every, revisions
        self._state_path = self.landing.parent / "deliveries.json"
        self._state: dict[str, str] = (
            json.loads(self._state_path.read_text()) if self._state_path.exists() else {}
        )
        self._index: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}

    def _range(self, path: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        if path not in self._index:
            with xr.open_dataset(path) as ds:
                t = ds[_time_dim(ds, path)].values
            self._index[path] = (pd.Timestamp(t.min()), pd.Timestamp(t.max()))
        return self._index[path]

    def deliver(self, tick: pd.Timestamp) -> Delivery:
        """Write every period that has ended by ``tick`` and is not yet delivered as it should
        be now (final, or preliminary while its final is not due). Idempotent."""
        tick = pd.Timestamp(tick)
        out = Delivery(str(tick))
        lag = self.every * self.revisions.lag if self.revisions else None
        for path in self.files:
            first, last = self._range(path)
            if first >= tick:
                continue
            bounds = period_bounds(self.anchor, self.every, first, min(last, tick))
            for lo, hi in itertools.pairwise(bounds):
                if hi > tick:
                    break
                final = lag is None or hi + lag <= tick
                kind = "final" if final else "preliminary"
                name = f"{Path(path).stem}.{lo:%Y%m%dT%H%M}{Path(path).suffix or '.nc'}"
                if self._state.get(name) == "final" or self._state.get(name) == kind:
                    continue
                n, t_last = self._write(path, name, lo, hi, tick, final)
                if n == 0:
                    self._state[name] = "final"
                    continue
                self._state[name] = kind
                (out.files if final else out.preliminary).append(name)
                out.steps += n
                out.last = max(out.last or t_last, t_last)
        write_json_atomic(self._state_path, self._state)
        return out

    def _write(
        self,
        path: str,
        name: str,
        lo: pd.Timestamp,
        hi: pd.Timestamp,
        tick: pd.Timestamp,
        final: bool,
    ) -> tuple[int, str]:
        with xr.open_dataset(path) as ds:
            tdim = _time_dim(ds, path)
            t = pd.DatetimeIndex(ds[tdim].values)
            sel = (t >= lo) & (t < hi) & (t < tick)
            if not sel.any():
                return 0, ""
            part = ds.isel({tdim: np.nonzero(sel)[0]}).load()
        served = pd.DatetimeIndex(part[tdim].values)
        if served.max() >= tick:  # the guarantee itself, checked where it is made
            raise AssertionError(f"{name}: would serve {served.max()} at tick {tick}")
        if not final:
            part = self._perturb(part, tdim, name)
        self.landing.mkdir(parents=True, exist_ok=True)
        dest = self.landing / name
        tmp = self.landing / f".{name}.partial"
        for v in part.variables.values():
            # the source's chunk shapes may not fit the part; the writer picks its own
            v.encoding.pop("chunksizes", None)
            v.encoding.pop("preferred_chunks", None)
            v.encoding.pop("original_shape", None)
        part.to_netcdf(tmp)
        os.replace(tmp, dest)
        with open(self.landing.parent / SERVED, "a") as fh:
            fh.write(
                json.dumps(
                    {
                        "tick": str(tick),
                        "file": name,
                        "source": os.path.basename(path),
                        "first": str(served.min()),
                        "last": str(served.max()),
                        "steps": len(served),
                        "kind": "final" if final else "preliminary",
                    }
                )
                + "\n"
            )
        return len(served), str(served.max())

    def _perturb(self, part: xr.Dataset, tdim: str, name: str) -> xr.Dataset:
        rv = self.revisions
        assert rv is not None
        rng = np.random.default_rng([rv.seed, zlib.crc32(name.encode())])
        out = part.copy()
        for k, v in part.data_vars.items():
            if tdim in v.dims and np.issubdtype(v.dtype, np.floating):
                x = v.values
                sd = float(np.nanstd(x)) or 1.0
                lo, hi = np.nanmin(x), np.nanmax(x)
                # kept within the period's range: preliminary data is wrong, not implausible
                noisy = np.clip(x + rv.noise * sd * rng.standard_normal(x.shape), lo, hi)
                out[k] = v.copy(data=noisy.astype(x.dtype))
                out[k].encoding = dict(v.encoding)
        return out


def served(landing: str | Path) -> list[dict]:
    """Every file the archive served, in order (the log the as-of tests read)."""
    p = Path(landing).parent / SERVED
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
