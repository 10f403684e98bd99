"""Sources of reanalysis data, each a small plugin in an fsspec-style registry.

A source opens its inputs, maps each onto the canonical schema and reports the inputs it could
not use (with the reason) instead of failing the batch.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import xarray as xr

from wxmodels.config.data import (
    FilesSourceConfig,
    SyntheticSourceConfig,
    ZarrSourceConfig,
    expand,
)
from wxmodels.data.canonical import to_canonical
from wxmodels.data.synthetic import write_synthetic_files
from wxmodels.data.validate import validate
from wxmodels.errors import DataError, WxcError
from wxmodels.schema import LAT, LON, TIME

__all__ = ["Problem", "SourceResult", "open_source", "register_source", "sources"]

log = logging.getLogger(__name__)

_GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")


@dataclass
class Problem:
    """An input that was left out, and why."""

    path: str
    reason: str


@dataclass
class SourceResult:
    """A canonical (lazy) dataset and the inputs that could not be used."""

    dataset: xr.Dataset | None
    inputs: list[str]
    problems: list[Problem] = field(default_factory=list)


Opener = Callable[..., SourceResult]
_sources: dict[str, Opener] = {}
sources: MappingProxyType[str, Opener] = MappingProxyType(_sources)


def register_source(kind: str, opener: Opener, *, clobber: bool = False) -> None:
    """Register ``opener(cfg, *, variables, max_nan_fraction, time_chunk)`` for ``kind``."""
    if kind in _sources and not clobber:
        raise ValueError(f"source kind {kind!r} is already registered")
    _sources[kind] = opener


def open_source(
    cfg: Any, *, variables: list[str], max_nan_fraction: float, time_chunk: int = 24
) -> SourceResult:
    """Open the source described by ``cfg`` (its ``kind`` picks the plugin)."""
    try:
        opener = _sources[cfg.kind]
    except KeyError:
        raise DataError(f"unknown source kind {cfg.kind!r}; known: {', '.join(_sources)}") from None
    return opener(
        cfg, variables=variables, max_nan_fraction=max_nan_fraction, time_chunk=time_chunk
    )


def _open_one(path: str, engine: str, time_chunk: int) -> xr.Dataset:
    if engine == "auto":
        engine = "cfgrib" if path.lower().endswith(_GRIB_SUFFIXES) else None
    kwargs: dict[str, Any] = {"chunks": {}}
    if engine == "cfgrib":
        kwargs["backend_kwargs"] = {"indexpath": ""}
    return xr.open_dataset(path, engine=engine, **kwargs)


def _canonical_files(
    paths: list[str], cfg, *, variables, max_nan_fraction, time_chunk
) -> SourceResult:
    datasets, problems = [], []
    for path in paths:
        try:
            raw = _open_one(path, getattr(cfg, "engine", "auto"), time_chunk)
            ds = to_canonical(
                raw,
                rename=cfg.rename,
                units=cfg.units,
                accumulation_hours=cfg.accumulation_hours,
                member=cfg.member,
            )
            keep = [v for v in ds.data_vars if v in variables]
            if not keep:
                raise DataError(
                    f"none of the configured variables (has: {', '.join(ds.data_vars)})"
                )
            ds = ds[keep]
            validate(ds, max_nan_fraction=max_nan_fraction, what=Path(path).name)
            datasets.append(ds)
        except (WxcError, OSError, ValueError, KeyError, RuntimeError, EOFError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.warning("leaving out %s: %s", path, reason)
            problems.append(Problem(path, reason))
    if not datasets:
        return SourceResult(None, paths, problems)
    try:
        ds = xr.combine_by_coords(
            datasets,
            combine_attrs="drop_conflicts",
            join="exact",
            data_vars="all",
            coords="minimal",
            compat="no_conflicts",
        )
    except ValueError as e:
        raise DataError(f"the source files do not fit together: {str(e).splitlines()[0]}") from e
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise DataError(
            f"variable(s) {', '.join(missing)} not found in the source "
            f"(found: {', '.join(sorted(map(str, ds.data_vars)))})"
        )
    ds = ds[variables].transpose(TIME, LAT, LON)
    return SourceResult(ds, paths, problems)


def _glob(patterns: list[str]) -> list[str]:
    paths: list[str] = []
    for p in patterns:
        hits = sorted(glob.glob(p))
        if not hits:
            raise DataError(f"no input files match {p!r}")
        paths.extend(hits)
    return list(dict.fromkeys(paths))


def open_files(cfg: FilesSourceConfig, **kw) -> SourceResult:
    """NetCDF (netCDF4/h5netcdf) or GRIB (cfgrib) files selected by glob patterns."""
    return _canonical_files(_glob(cfg.expanded()), cfg, **kw)


def open_synthetic(cfg: SyntheticSourceConfig, **kw) -> SourceResult:
    """Write the SYNTHETIC atmosphere's day files (idempotent), then read them as files."""
    paths = write_synthetic_files(
        expand(cfg.directory),
        start=cfg.start,
        days=cfg.days,
        nlat=cfg.nlat,
        nlon=cfg.nlon,
        resolution=cfg.resolution,
        seed=cfg.seed,
    )
    return _canonical_files([str(p) for p in paths], cfg, **kw)


def open_zarr(cfg: ZarrSourceConfig, *, variables, max_nan_fraction, time_chunk) -> SourceResult:
    """A Zarr in the WeatherBench 2 / ARCO-ERA5 layout (``time, latitude, longitude``)."""
    try:
        raw = xr.open_zarr(expand(cfg.url), storage_options=cfg.storage_options or None, chunks={})
    except (OSError, ValueError, KeyError, FileNotFoundError) as e:
        raise DataError(f"cannot open zarr {cfg.url}: {str(e).splitlines()[0]}") from e
    if cfg.start or cfg.end:
        raw = raw.sel(time=slice(cfg.start, cfg.end))
    ds = to_canonical(
        raw,
        rename=cfg.rename,
        units=cfg.units,
        accumulation_hours=cfg.accumulation_hours,
        member=cfg.member,
        variables=variables,
    )
    if cfg.lat_bounds:
        ds = ds.sel({LAT: slice(*sorted(cfg.lat_bounds))})
    if cfg.lon_bounds:
        ds = ds.sel({LON: slice(*cfg.lon_bounds)})
    validate(ds, max_nan_fraction=max_nan_fraction, what=cfg.url)
    return SourceResult(ds, [cfg.url], [])


register_source("files", open_files)
register_source("synthetic", open_synthetic)
register_source("zarr", open_zarr)
