"""Sources of reanalysis data, each a small plugin in an fsspec-style registry.

A source lists its inputs (with a fingerprint, so that unchanged inputs are not read again),
tells which time steps it can offer, and opens inputs as one canonical, lazy, chunked dataset,
setting aside those that cannot be used (with the reason) instead of failing the batch.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.config.data import expand
from wxmodels.data.canonical import to_canonical
from wxmodels.data.regrid import coarsen, subset
from wxmodels.data.synthetic import write_synthetic_files
from wxmodels.data.validate import check_times
from wxmodels.errors import DataError, WxcError
from wxmodels.schema import LAT, LON, TIME

__all__ = [
    "InputRef",
    "Problem",
    "Source",
    "SourceResult",
    "make_source",
    "register_source",
    "sources",
]

log = logging.getLogger(__name__)

_GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")


@dataclass(frozen=True)
class InputRef:
    """One input (a file or a URL) and its fingerprint (changes when its content may have)."""

    id: str
    fingerprint: str


@dataclass
class Problem:
    """An input that was left out, and why."""

    path: str
    reason: str
    fingerprint: str = ""


@dataclass
class SourceResult:
    """A canonical (lazy) dataset, the inputs it came from with their time ranges, and the
    inputs that could not be used."""

    dataset: xr.Dataset | None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _fingerprint(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


class Source:
    """Base class: subclasses implement :meth:`list_inputs` and :meth:`_open_one`."""

    def __init__(self, cfg: Any, *, variables: list[str], time_chunk: int = 24):
        self.cfg = cfg
        self.variables = list(variables)
        self.time_chunk = time_chunk

    def list_inputs(self) -> list[InputRef]:
        raise NotImplementedError

    def available_times(self, inputs: list[InputRef] | None = None) -> pd.DatetimeIndex:
        """The time steps the source can offer (from metadata; no data is read)."""
        out: list[np.ndarray] = []
        for ref in inputs or self.list_inputs():
            try:
                out.append(self._open_one(ref)[TIME].values)
            except (WxcError, OSError, ValueError, KeyError, RuntimeError):
                continue
        return pd.DatetimeIndex(np.unique(np.concatenate(out)) if out else [])

    def _raw(self, ref: InputRef) -> xr.Dataset:
        raise NotImplementedError

    def _open_one(self, ref: InputRef, after: np.datetime64 | None = None) -> xr.Dataset:
        """Open, build time if needed, map to the canonical schema, subset/coarsen; lazy."""
        cfg = self.cfg
        raw = self._raw(ref)
        if TIME not in raw.dims and cfg.time_from_step is not None:
            raw = _time_from_step(raw, cfg.time_from_step)
        rename = dict(cfg.rename)
        name = Path(ref.id).name
        for pattern, mapping in cfg.file_rename.items():
            if fnmatch.fnmatch(name, pattern):
                rename.update(mapping)
        ds = to_canonical(
            raw,
            rename=rename,
            units=cfg.units,
            accumulation_hours=cfg.accumulation_hours,
            member=cfg.member,
        )
        keep = [v for v in ds.data_vars if v in self.variables]
        if not keep:
            raise DataError(f"none of the configured variables (has: {', '.join(ds.data_vars)})")
        ds = ds[keep]
        check_times(ds[TIME].values, name)
        if after is not None:
            ds = ds.sel({TIME: ds[TIME] > after})
        g = cfg.grid
        if g.lat_bounds or g.lon_bounds:
            ds = subset(ds, g.lat_bounds, g.lon_bounds)
        if g.coarsen:
            ds = coarsen(ds, g.coarsen)
        return ds.chunk({TIME: self.time_chunk, LAT: -1, LON: -1})

    def open(self, inputs: list[InputRef], *, after: np.datetime64 | None = None) -> SourceResult:
        """Open ``inputs``; structural problems (unreadable, no variable, bad units or times,
        another grid) set an input aside; values are validated later, in the write pass."""
        opened: list[tuple[InputRef, xr.Dataset]] = []
        used: dict[str, dict[str, Any]] = {}
        problems: list[Problem] = []
        for ref in inputs:
            try:
                ds = self._open_one(ref, after)
            except (WxcError, OSError, ValueError, KeyError, RuntimeError, EOFError) as e:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                log.warning("leaving out %s: %s", ref.id, reason)
                problems.append(Problem(ref.id, reason, ref.fingerprint))
                continue
            if ds.sizes[TIME] == 0:
                used[ref.id] = {"fingerprint": ref.fingerprint, "range": None}
            else:
                opened.append((ref, ds))
        grids = [
            (tuple(np.round(d[LAT].values, 6)), tuple(np.round(d[LON].values, 6)))
            for _, d in opened
        ]
        best = max(set(grids), key=grids.count) if grids else None
        datasets = []
        for (ref, ds), grid in zip(opened, grids, strict=True):
            if grid != best:
                problems.append(
                    Problem(ref.id, "its grid differs from the other inputs'", ref.fingerprint)
                )
                continue
            datasets.append(ds)
            t = ds[TIME].values
            used[ref.id] = {
                "fingerprint": ref.fingerprint,
                "range": [str(pd.Timestamp(t[0])), str(pd.Timestamp(t[-1]))],
                "variables": sorted(map(str, ds.data_vars)),
            }
        if not datasets:
            return SourceResult(None, used, problems)
        try:
            ds = xr.combine_by_coords(
                datasets,
                combine_attrs="drop_conflicts",
                join="outer",
                data_vars="all",
                coords="minimal",
                compat="no_conflicts",
            )
        except ValueError as e:
            raise DataError(f"the inputs do not fit together: {str(e).splitlines()[0]}") from e
        if not isinstance(ds, xr.Dataset):
            raise DataError("the inputs do not combine into one dataset")
        missing = [v for v in self.variables if v not in ds.data_vars]
        if missing:
            raise DataError(
                f"variable(s) {', '.join(missing)} not found in the source "
                f"(found: {', '.join(sorted(map(str, ds.data_vars)))})"
            )
        ds = ds[self.variables].transpose(TIME, LAT, LON)
        return SourceResult(ds.chunk({TIME: self.time_chunk, LAT: -1, LON: -1}), used, problems)

    def set_aside(self, problems: list[Problem]) -> None:
        """What to do with inputs that failed (the default: nothing; they are recorded)."""

    def done(self, ids: list[str]) -> None:
        """What to do with inputs once committed (the default: nothing)."""


def _time_from_step(raw: xr.Dataset, cfg) -> xr.Dataset:
    if cfg.dim not in raw.dims:
        raise DataError(f"no time coordinate and no {cfg.dim!r} dimension to build one from")
    ref = cfg.reference
    if ref is None:
        if cfg.reference_variable not in raw.variables:
            raise DataError(
                f"no time coordinate and no {cfg.reference_variable!r} variable "
                "with the reference time; set time_from_step.reference"
            )
        val = raw[cfg.reference_variable].values
        ref = (val.item().decode() if isinstance(val.item(), bytes) else str(val.item())).strip()
    try:
        t0 = pd.Timestamp(ref.replace("/", "-"))
    except ValueError:
        t0 = pd.to_datetime(ref, format="%Y %m %d %H:%M")
    steps = pd.to_timedelta(raw[cfg.dim].values.astype(np.float64), unit=cfg.units)
    raw = raw.drop_vars([cfg.reference_variable], errors="ignore")
    return raw.rename({cfg.dim: TIME}).assign_coords({TIME: (t0 + steps).values})


class FilesSource(Source):
    """NetCDF (netCDF4/h5netcdf/scipy) or GRIB (cfgrib, no index files) by glob patterns."""

    def list_inputs(self) -> list[InputRef]:
        paths: list[str] = []
        for p in self.cfg.expanded():
            hits = sorted(glob.glob(p))
            if not hits and self.cfg.kind == "files":
                raise DataError(f"no input files match {p!r}")
            paths.extend(hits)
        return [InputRef(p, _fingerprint(p)) for p in dict.fromkeys(paths)]

    def _raw(self, ref: InputRef) -> xr.Dataset:
        engine = getattr(self.cfg, "engine", "auto")
        if engine == "auto":
            engine = "cfgrib" if ref.id.lower().endswith(_GRIB_SUFFIXES) else None
        kwargs: dict[str, Any] = {}
        if engine == "cfgrib":
            kwargs["backend_kwargs"] = {"indexpath": ""}
        return xr.open_dataset(ref.id, engine=engine, decode_timedelta=True, **kwargs)


class LandingSource(FilesSource):
    """A directory where files arrive; failures go to ``quarantine/`` with their reason."""

    def set_aside(self, problems: list[Problem]) -> None:
        qdir = Path(expand(self.cfg.directory)) / "quarantine"
        for p in problems:
            src = Path(p.path)
            if src.exists() and src.parent != qdir:
                qdir.mkdir(parents=True, exist_ok=True)
                shutil.move(str(src), qdir / src.name)
                (qdir / f"{src.name}.reason.txt").write_text(p.reason + "\n")

    def done(self, ids: list[str]) -> None:
        if not self.cfg.archive:
            return
        adir = Path(expand(self.cfg.directory)) / "ingested"
        adir.mkdir(parents=True, exist_ok=True)
        for i in ids:
            if Path(i).exists():
                shutil.move(i, adir / Path(i).name)


class SyntheticSource(FilesSource):
    """The SYNTHETIC atmosphere's day files (written once, idempotently), read as files."""

    def list_inputs(self) -> list[InputRef]:
        c = self.cfg
        paths = write_synthetic_files(
            expand(c.directory),
            start=c.start,
            days=c.days,
            nlat=c.nlat,
            nlon=c.nlon,
            resolution=c.resolution,
            seed=c.seed,
        )
        return [InputRef(str(p), _fingerprint(str(p))) for p in paths]


class ZarrSource(Source):
    """A Zarr in the WeatherBench 2 / ARCO-ERA5 layout, opened lazily through fsspec."""

    def _dataset(self) -> xr.Dataset:
        try:
            ds = xr.open_zarr(
                expand(self.cfg.url), storage_options=self.cfg.storage_options or None, chunks={}
            )
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"cannot open zarr {self.cfg.url}: {str(e).splitlines()[0]}") from e
        if self.cfg.start or self.cfg.end:
            ds = ds.sel({TIME: slice(self.cfg.start, self.cfg.end)})
        return ds

    def list_inputs(self) -> list[InputRef]:
        t = self._dataset()[TIME].values
        fp = f"{len(t)}:{pd.Timestamp(t[-1]) if len(t) else ''}"
        return [InputRef(self.cfg.url, fp)]

    def _raw(self, ref: InputRef) -> xr.Dataset:
        return self._dataset()

    def open(self, inputs, *, after=None):
        if after is not None and self.cfg.recheck_hours:
            after = after - np.timedelta64(self.cfg.recheck_hours, "h")
        return super().open(inputs, after=after)


_sources: dict[str, type[Source]] = {}
sources: MappingProxyType[str, type[Source]] = MappingProxyType(_sources)


def register_source(kind: str, cls: type[Source], *, clobber: bool = False) -> None:
    """Register a :class:`Source` subclass for ``kind``; duplicates raise unless ``clobber``."""
    if kind in _sources and not clobber:
        raise ValueError(f"source kind {kind!r} is already registered")
    _sources[kind] = cls


def make_source(cfg: Any, *, variables: list[str], time_chunk: int = 24) -> Source:
    try:
        cls = _sources[cfg.kind]
    except KeyError:
        raise DataError(f"unknown source kind {cfg.kind!r}; known: {', '.join(_sources)}") from None
    return cls(cfg, variables=variables, time_chunk=time_chunk)


register_source("files", FilesSource)
register_source("landing", LandingSource)
register_source("synthetic", SyntheticSource)
register_source("zarr", ZarrSource)
