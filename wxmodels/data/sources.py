"""Sources of reanalysis data, each a small plugin in an fsspec-style registry.

A source lists its inputs (with a fingerprint, so that unchanged inputs are not read again),
tells which time steps it can offer, and opens inputs as one canonical, lazy, chunked dataset,
setting aside those that cannot be used (with the reason) instead of failing the batch.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
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
from wxmodels.data.canonical import (
    _LAT_NAMES,
    _LON_NAMES,
    _find,
    normalise_time_axis,
    plan_canonical,
    to_canonical,
)
from wxmodels.data.combine import combine, grid_key, time_from_step
from wxmodels.data.regrid import (
    coarsen,
    default_method,
    describe_grid,
    regrid_raw,
    subset,
    target_grid,
)
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

    def __init__(
        self, cfg: Any, *, variables: list[str], time_chunk: int = 24, target_grid: Any = None
    ):
        self.cfg = cfg
        self.variables = list(variables)
        self.time_chunk = time_chunk
        self.target_cfg = target_grid
        self._target: xr.Dataset | None = None

    @property
    def target(self) -> xr.Dataset | None:
        """The target grid (``data.grid``) every input is regridded to, or ``None``."""
        if self._target is None and self.target_cfg is not None:
            self._target = target_grid(self.target_cfg)
        return self._target

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

    def _prepare(self, ref: InputRef) -> xr.Dataset:
        """One input as raw, lazy, chunked data with a time axis and its per-file renames;
        metadata is checked against the canonical schema (no data is read)."""
        cfg = self.cfg
        raw = normalise_time_axis(self._raw(ref))
        # wrap the lazy backend arrays in dask before any arithmetic (a unit conversion on a
        # lazily indexed array would load it whole): each chunk is read when it is written
        tdim = TIME if TIME in raw.dims else getattr(cfg.time_from_step, "dim", None)
        if not any(v.chunks for v in raw.data_vars.values()):
            # the token names the chunks after the input's identity: tokenizing the lazy
            # backend arrays instead costs more than reading small files
            token = hashlib.sha1(f"{ref.id}:{ref.fingerprint}".encode()).hexdigest()
            raw = raw.chunk({tdim: self.time_chunk} if tdim in raw.dims else {}, token=token)
        if TIME not in raw.dims and cfg.time_from_step is not None:
            raw = time_from_step(raw, cfg.time_from_step)
        name = Path(ref.id).name
        for pattern, mapping in cfg.file_rename.items():
            if fnmatch.fnmatch(name, pattern):
                for src, dst in mapping.items():
                    if src in raw.data_vars:
                        if src in cfg.units:  # the units override follows the variable
                            raw[src].attrs["units"] = cfg.units[src]
                        raw = raw.rename({src: dst})
        plan = plan_canonical(
            raw, rename=cfg.rename, units=cfg.units, accumulation_hours=cfg.accumulation_hours
        )
        keep = sorted({p.source for p in plan if p.name in self.variables})
        if not keep:
            raise DataError(
                f"none of the configured variables (has: {', '.join(p.name for p in plan)})"
            )
        check_times(raw[TIME].values, name)
        raw = raw[keep]
        lat, lon = _find(raw, _LAT_NAMES, "latitude"), _find(raw, _LON_NAMES, "longitude")
        if self.target is None:
            info: dict[str, Any] = {"grid": describe_grid(raw[lat].values, raw[lon].values)}
        else:
            chosen = self.target_cfg.methods
            methods = {
                p.source: chosen.get(p.name) or default_method(p.name)
                for p in plan
                if p.source in keep
            }
            raw, info = regrid_raw(raw, lat, lon, self.target, methods)
        raw.attrs["wxc_input"] = json.dumps(info)
        # what it provides, decided once here (the plan is metadata work, asked for again
        # when inputs are compared and recorded)
        raw.attrs["wxc_provides"] = json.dumps(
            sorted({p.name for p in plan if p.name in self.variables})
        )
        return raw

    def _canonical(self, raw: xr.Dataset, after: np.datetime64 | None = None) -> xr.Dataset:
        cfg = self.cfg
        ds = to_canonical(
            raw,
            rename=cfg.rename,
            units=cfg.units,
            accumulation_hours=cfg.accumulation_hours,
            member=cfg.member,
        )
        ds = ds[[v for v in self.variables if v in ds.data_vars]]
        if after is not None:
            ds = ds.sel({TIME: ds[TIME] > after})
        g = cfg.grid
        if g.lat_bounds or g.lon_bounds:
            ds = subset(ds, g.lat_bounds, g.lon_bounds)
        if g.coarsen:
            ds = coarsen(ds, g.coarsen)
        return ds

    def _open_one(self, ref: InputRef, after: np.datetime64 | None = None) -> xr.Dataset:
        """One input in the canonical schema (lazy)."""
        return self._canonical(self._prepare(ref), after)

    def _provides(self, raw: xr.Dataset) -> set[str]:
        """The configured canonical variables a prepared input holds (from metadata)."""
        if "wxc_provides" in raw.attrs:
            return set(json.loads(raw.attrs["wxc_provides"]))
        cfg = self.cfg
        plan = plan_canonical(
            raw, rename=cfg.rename, units=cfg.units, accumulation_hours=cfg.accumulation_hours
        )
        return {p.name for p in plan if p.name in self.variables}

    def _drop_incomplete(
        self, kept: list[tuple[InputRef, xr.Dataset]], complete_layout: bool
    ) -> tuple[list[tuple[InputRef, xr.Dataset]], list[Problem]]:
        """Set aside inputs that lack a configured variable that no other input provides for
        their times, where inputs are meant to hold every variable (``complete_layout``, or an
        input of this batch that does). In layouts of one variable per file a lone file is not
        defective, only early: it is left in."""
        provides = {ref.id: self._provides(raw) for ref, raw in kept}
        wanted = set(self.variables)
        if not (complete_layout or any(p >= wanted for p in provides.values())):
            return kept, []
        times = {ref.id: set(raw[TIME].values.tolist()) for ref, raw in kept}
        covered = {
            v: set().union(*(times[r] for r, p in provides.items() if v in p)) for v in wanted
        }
        out, problems = [], []
        for ref, raw in kept:
            own = times[ref.id]
            missing = sorted(v for v in wanted - provides[ref.id] if not own <= covered[v])
            if missing:
                reason = (
                    f"lacks the configured variable(s) {', '.join(missing)} (the other inputs "
                    "hold every variable; no other input provides them for its times)"
                )
                log.warning("leaving out %s: %s", ref.id, reason)
                problems.append(Problem(ref.id, reason, ref.fingerprint))
            else:
                out.append((ref, raw))
        return out, problems

    def _drop_overlapping(
        self, kept: list[tuple[InputRef, xr.Dataset]]
    ) -> tuple[list[tuple[InputRef, xr.Dataset]], list[Problem]]:
        """Leave out an input that offers a canonical variable for times an earlier input (by
        name) already offers: which of the two is right is not the pipeline's guess."""
        seen: dict[str, tuple[str, set]] = {}
        out, problems = [], []
        for ref, raw in sorted(kept, key=lambda x: x[0].id):
            own = set(raw[TIME].values.tolist())
            clash = [
                (v, seen[v][0])
                for v in sorted(self._provides(raw))
                if v in seen and own & seen[v][1]
            ]
            if clash:
                v, other = clash[0]
                reason = (
                    f"offers {v} for times {Path(other).name} already offers; map one of them "
                    "to another variable (rename/file_rename), remove one, or set the "
                    "source's overlap: merge"
                )
                log.warning("leaving out %s: %s", ref.id, reason)
                problems.append(Problem(ref.id, reason, ref.fingerprint))
                continue
            for v in self._provides(raw):
                prev = seen.get(v, (ref.id, set()))
                seen[v] = (prev[0], prev[1] | own)
            out.append((ref, raw))
        return out, problems

    def open(
        self,
        inputs: list[InputRef],
        *,
        after: np.datetime64 | None = None,
        complete_layout: bool = False,
    ) -> SourceResult:
        """Open ``inputs`` as one canonical dataset. Each input is checked on its own from its
        metadata (readable, a time axis, mappable variables, convertible units, the common
        grid) and set aside on failure, as is an input that lacks a configured variable in a
        layout of complete inputs (``complete_layout``: the store's ledger says inputs used to
        hold every variable); the good ones are combined first and mapped to the canonical
        schema once, as ``open_mfdataset`` would. Values are validated later, in the write
        pass."""
        opened: list[tuple[InputRef, xr.Dataset]] = []
        used: dict[str, dict[str, Any]] = {}
        problems: list[Problem] = []
        for ref in inputs:
            try:
                raw = self._prepare(ref)
            except (WxcError, OSError, ValueError, KeyError, RuntimeError, EOFError) as e:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                log.warning("leaving out %s: %s", ref.id, reason)
                problems.append(Problem(ref.id, reason, ref.fingerprint))
                continue
            opened.append((ref, raw))
        grids = [grid_key(d) for _, d in opened]
        best = max(set(grids), key=grids.count) if grids else None
        kept = []
        for (ref, raw), grid in zip(opened, grids, strict=True):
            if grid != best:
                theirs = json.loads(raw.attrs.get("wxc_input", "{}")).get("grid", "")
                problems.append(
                    Problem(
                        ref.id,
                        f"its grid ({theirs}) differs from the other inputs'; declare a "
                        "target grid (data.grid) to regrid them",
                        ref.fingerprint,
                    )
                )
                continue
            kept.append((ref, raw))
        kept, lacking = self._drop_incomplete(kept, complete_layout)
        problems += lacking
        if getattr(self.cfg, "overlap", "refuse") == "refuse":
            kept, doubled = self._drop_overlapping(kept)
            problems += doubled
        raws = []
        for ref, raw in kept:
            raws.append(raw)
            t = raw[TIME].values
            used[ref.id] = {
                "fingerprint": ref.fingerprint,
                "range": [str(pd.Timestamp(t[0])), str(pd.Timestamp(t[-1]))] if len(t) else None,
                "variables": sorted(map(str, raw.data_vars)),
                "canonical": sorted(self._provides(raw)),
                **json.loads(raw.attrs.pop("wxc_input", "{}")),
            }
            raw.attrs.pop("wxc_provides", None)
        if not raws:
            return SourceResult(None, used, problems)
        try:
            ds = self._canonical(combine(raws), after)
        except ValueError as e:
            raise DataError(f"the inputs do not fit together: {str(e).splitlines()[0]}") from e
        missing = [v for v in self.variables if v not in ds.data_vars]
        if missing:
            left = "; ".join(f"{Path(p.path).name}: {p.reason}" for p in problems[:2])
            raise DataError(
                f"variable(s) {', '.join(missing)} not found in the source "
                f"(found: {', '.join(sorted(map(str, ds.data_vars)))})"
                + (f"; left out: {left}" if left else "")
            )
        if ds.sizes[TIME] == 0:
            return SourceResult(None, used, problems)
        return SourceResult(ds[self.variables].transpose(TIME, LAT, LON), used, problems)

    def set_aside(self, problems: list[Problem]) -> None:
        """What to do with inputs that failed (the default: nothing; they are recorded)."""

    def done(self, ids: list[str]) -> None:
        """What to do with inputs once committed (the default: nothing)."""


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

    def open(self, inputs, *, after=None, complete_layout=False):
        if after is not None and self.cfg.recheck_hours:
            after = after - np.timedelta64(self.cfg.recheck_hours, "h")
        return super().open(inputs, after=after, complete_layout=complete_layout)


_sources: dict[str, type[Source]] = {}
sources: MappingProxyType[str, type[Source]] = MappingProxyType(_sources)


def register_source(kind: str, cls: type[Source], *, clobber: bool = False) -> None:
    """Register a :class:`Source` subclass for ``kind``; duplicates raise unless ``clobber``."""
    if kind in _sources and not clobber:
        raise ValueError(f"source kind {kind!r} is already registered")
    _sources[kind] = cls


def make_source(
    cfg: Any, *, variables: list[str], time_chunk: int = 24, target_grid: Any = None
) -> Source:
    """The source for ``cfg``; ``target_grid`` (``data.grid``) regrids every input."""
    try:
        cls = _sources[cfg.kind]
    except KeyError:
        raise DataError(f"unknown source kind {cfg.kind!r}; known: {', '.join(_sources)}") from None
    return cls(cfg, variables=variables, time_chunk=time_chunk, target_grid=target_grid)


register_source("files", FilesSource)
register_source("landing", LandingSource)
register_source("synthetic", SyntheticSource)
register_source("zarr", ZarrSource)
