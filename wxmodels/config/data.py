"""Where the data comes from, where it is stored, and how time is split."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from wxmodels.config.base import Strict
from wxmodels.schema import VARIABLES

__all__ = [
    "DataConfig",
    "FilesSourceConfig",
    "GridConfig",
    "LandingSourceConfig",
    "SourceConfig",
    "SourceOptions",
    "SplitConfig",
    "StaticFieldConfig",
    "SyntheticSourceConfig",
    "TargetGridConfig",
    "TimeFromStepConfig",
    "ZarrSourceConfig",
]


def expand(path: str) -> str:
    """Expand ``${VAR:-default}``, ``${VAR}``, ``$VAR`` and ``~`` in a path.

    A variable that is unset (or empty) and has no default is an error: ``${DATA}/store`` with
    ``DATA`` unset must not quietly become ``/store`` or the current directory.
    """
    import re

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        default = m.group(3)
        value = os.environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise ValueError(f"environment variable {name} is not set (in {path!r})")

    path = re.sub(r"\$\{(\w+)(:-([^}]*))?\}|\$(\w+)", sub, path)
    return os.path.expanduser(path)


class TimeFromStepConfig(Strict):
    """Build ``time`` for files that have none (the NCL storm files: ``timestep`` hours from
    a reference time stored in a ``reftime`` variable)."""

    dim: str = "timestep"
    """The dimension that counts steps from the reference time."""
    units: Literal["hours", "minutes", "days"] = "hours"
    reference: str | None = None
    """The reference time; ``None`` reads it from ``reference_variable``."""
    reference_variable: str = "reftime"


class GridConfig(Strict):
    """Optional spatial subsetting and coarsening, applied to every input."""

    lat_bounds: tuple[float, float] | None = None
    """Keep latitudes within ``(south, north)``."""
    lon_bounds: tuple[float, float] | None = None
    """Keep longitudes within ``(west, east)``, in -180..180."""
    coarsen: int | None = Field(None, ge=2, le=64)
    """Average ``coarsen x coarsen`` blocks, weighted by cell area and NaN-aware."""


class TargetGridConfig(Strict):
    """The grid every input is regridded to before the inputs are combined (archives mix
    grids: T62 Gaussian beside 2.5 degree regular in NCEP R1, reduced Gaussian beside regular
    in ERA5 GRIB). Fluxes and rates are remapped conservatively (area integrals kept), states
    bilinearly; NaN (sea or land) cells are left out of the averages. Done by xarray-regrid."""

    kind: Literal["regular", "file"] = "regular"
    resolution: float | None = Field(None, gt=0, le=30)
    """``regular``: grid spacing in degrees (latitude and longitude)."""
    lat_bounds: tuple[float, float] = (-90.0, 90.0)
    """``regular``: the first and last latitude of the grid (cell centres)."""
    lon_bounds: tuple[float, float] | None = None
    """``regular``: the first and last longitude (cell centres, -180..180); ``None``: the
    whole circle from -180."""
    path: str | None = None
    """``file``: a NetCDF file whose latitude/longitude coordinates are the grid."""
    methods: dict[str, Literal["conservative", "linear", "nearest"]] = {}
    """Per canonical variable, overriding the default (conservative for fluxes and rates,
    linear for states)."""

    @model_validator(mode="after")
    def _complete(self) -> TargetGridConfig:
        if self.kind == "regular" and self.resolution is None:
            raise ValueError("a regular target grid needs `resolution` (degrees)")
        if self.kind == "file" and not self.path:
            raise ValueError("a target grid from a file needs `path`")
        bad = [v for v in self.methods if v not in VARIABLES]
        if bad:
            raise ValueError(f"methods for unknown canonical variables: {bad}")
        return self


class SourceOptions(Strict):
    """How a source's variables are read (shared by every kind of source)."""

    rename: dict[str, str] = {}
    """Explicit ``{source variable: canonical variable}``; wins over the built-in alias tables."""
    units: dict[str, str] = {}
    """``{source variable: units}`` for files whose units attribute is missing or wrong."""
    accumulation_hours: float | None = None
    """Accumulation period of accumulated fields (ERA5 ``tp``/``ssrd``: 1 for hourly files)."""
    member: Literal["mean"] | int = "mean"
    """Ensemble dimension handling: the ensemble mean, or one member's number."""
    file_rename: dict[str, dict[str, str]] = {}
    """``{file-name glob: {source variable: canonical variable}}`` for files whose variables
    share a name (``u`` at the surface in one file, at 500 hPa in another)."""
    time_from_step: TimeFromStepConfig | None = None
    """For files without a time coordinate."""
    overlap: Literal["refuse", "merge"] = "refuse"
    """Two inputs of one run offering the same canonical variable for the same times:
    ``refuse`` leaves the later one (by name) out with the reason; ``merge`` combines them
    when their values agree (and fails when they do not)."""
    grid: GridConfig = GridConfig()

    @field_validator("rename")
    @classmethod
    def _known_targets(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [t for t in v.values() if t not in VARIABLES and f"{t}_500hPa" not in VARIABLES]
        if bad:
            raise ValueError(f"rename targets are not canonical variables: {bad}")
        return v


class FilesSourceConfig(SourceOptions):
    """Local (or fsspec) NetCDF / GRIB files selected by glob patterns."""

    kind: Literal["files"] = "files"
    paths: list[str] = Field(min_length=1)
    """Glob patterns; ``${WXC_DATA_DIR:-../shared/data}`` style variables are expanded."""
    engine: Literal["auto", "netcdf4", "h5netcdf", "scipy", "cfgrib"] = "auto"
    """xarray engine; ``auto`` picks cfgrib for ``.grib``/``.grb``/``.grib2`` files."""

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, v: list[str]) -> list[str]:
        for p in v:
            expand(p)  # an unset variable is an error now, not an empty string later
        return v

    def expanded(self) -> list[str]:
        return [expand(p) for p in self.paths]


class LandingSourceConfig(FilesSourceConfig):
    """A landing directory where new files arrive over time. Files that fail are moved to
    ``<directory>/quarantine/`` with a ``.reason.txt``; ingested ones optionally to
    ``<directory>/ingested/``."""

    kind: Literal["landing"] = "landing"  # type: ignore[assignment]
    paths: list[str] = []
    directory: str
    pattern: str = "*.nc"
    """Glob of the files to pick up (``*.grib`` for GRIB)."""
    archive: bool = False
    """Move ingested files to ``ingested/`` (otherwise they stay and the store's ledger keeps
    them from being read again)."""

    @field_validator("directory")
    @classmethod
    def _check_directory(cls, v: str) -> str:
        if not expand(v).strip():
            raise ValueError("the landing directory is empty")
        return v

    def expanded(self) -> list[str]:
        return [os.path.join(expand(self.directory), self.pattern)]


class ZarrSourceConfig(SourceOptions):
    """A Zarr store in the WeatherBench 2 / ARCO-ERA5 layout, opened through fsspec."""

    kind: Literal["zarr"] = "zarr"
    url: str
    """Local path, ``gs://``, ``s3://`` or any fsspec URL."""
    storage_options: dict[str, Any] = {}
    """Passed to fsspec (for example ``{token: anon}``); never put secrets here: use the
    environment."""
    start: str | None = None
    """First time step to read (inclusive); ``None`` for the beginning."""
    end: str | None = None
    """Last time step to read (inclusive); ``None`` for the end."""
    recheck_hours: int = Field(0, ge=0, le=24 * 366 * 5)
    """Also compare this many hours before the store's end, to pick up revisions (ERA5T
    replaced by ERA5 within ~3 months: 2160)."""


class SyntheticSourceConfig(SourceOptions):
    """The project's SYNTHETIC atmosphere (not real data), written as ERA5-style NetCDF files
    into ``directory`` and then ingested like any other files."""

    kind: Literal["synthetic"] = "synthetic"
    directory: str = ".wxc/demo/landing"
    """Where the day files are written."""
    start: str = "2024-01-01"
    days: int = Field(21, ge=3, le=3660)
    nlat: int = Field(16, ge=4, le=721)
    nlon: int = Field(24, ge=4, le=1440)
    resolution: float = Field(1.0, gt=0, le=10)
    seed: int = 0
    accumulation_hours: float | None = 1.0


SourceConfig = Annotated[
    FilesSourceConfig | LandingSourceConfig | ZarrSourceConfig | SyntheticSourceConfig,
    Field(discriminator="kind"),
]


class StaticFieldConfig(Strict):
    """A static field read from a file (e.g. ERA5 ``lsm`` or ``z`` at the surface)."""

    path: str
    variable: str
    scale: float = 1.0
    """Multiply by this (``1/9.80665`` turns surface geopotential into orography in m)."""


class SplitConfig(Strict):
    """A time split with gaps, so that no training sample's targets leak into validation/test.

    Fractions are of the store's committed time range; gaps are cut out after each part.
    """

    train_fraction: float = Field(0.65, gt=0, lt=1)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    gap_hours: int = Field(24, ge=0, le=24 * 366)
    """Hours left out between train and validation and between validation and test (>= the
    longest lead, so that targets never overlap)."""
    test_start: str | None = None
    """Start of the test window; overrides the fractions for the test part when set."""
    val_start: str | None = None
    """Start of the validation window (with ``test_start``): split by dates, as by years on a
    long record (train up to ``val_start``, validation up to ``test_start``, each less the gap);
    the fractions are then unused."""

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.val_start is not None:
            if self.test_start is None:
                raise ValueError("val_start needs test_start")
            if pd.Timestamp(self.val_start) >= pd.Timestamp(self.test_start):
                raise ValueError("val_start must come before test_start")
        if self.train_fraction + self.val_fraction >= 0.95:
            raise ValueError("train_fraction + val_fraction must leave room for a test window")
        return self


class DataConfig(Strict):
    """Source, store, variables and split."""

    source: SourceConfig
    store: str
    """The canonical Zarr store: a local path or ``s3://bucket/key``."""
    storage_options: dict[str, Any] = {}
    """fsspec options for the store (endpoint_url, ...). Credentials come from the environment."""
    variables: list[str] = Field(min_length=1)
    """Canonical variables to ingest, train on and forecast."""
    time_chunk: int = Field(24, ge=1, le=100_000)
    """Time steps per Zarr chunk."""
    lock_timeout_s: float = Field(1800.0, ge=0, le=86_400)
    """How long a writer waits for another one (a scheduled ingest beside a manual one) to
    finish with the store before it gives up with an error."""
    lock_lease_s: float = Field(60.0, ge=1, le=3600)
    """Object storage only: a writer's lease not refreshed for this long (by the server's
    clock) is taken over; the holder refreshes it every sixth of it. Local stores use a
    kernel file lock, released when its holder dies."""
    max_nan_fraction: float = Field(0.05, ge=0, le=1)
    """Largest fraction of NaNs a variable may have outside the static (land-sea) mask."""
    paused_timeout_s: float = Field(120.0, gt=0, le=86_400)
    """Ingest on a Dask cluster: a worker paused over its memory limit, with no chunk of the
    write finishing for this long, fails the ingest with an error naming the worker, its
    memory and its limit (nothing is committed) instead of waiting forever."""
    max_open_files: int = Field(16, ge=1, le=100_000)
    """Input files kept open at once by an ingest in this process (xarray's file cache,
    128 otherwise): each open file holds its library's metadata and chunk caches, so a
    backlog of a year of day files would otherwise cost memory in proportion to its length."""
    split: SplitConfig = SplitConfig()
    gaps: Literal["refuse", "allow"] = "refuse"
    """A record with known gaps (winters only, an archive's outage): ``allow`` stores past a
    gap, its steps kept missing (never filled) and recorded as ranges in the store's history;
    windows that touch a gap are left out of training, baselines and scoring. ``refuse``:
    steps after a gap wait for the missing ones."""
    grid: TargetGridConfig | None = None
    """Regrid every input to this grid (``None``: inputs must share one grid; an input on
    another grid is left out with the reason)."""
    static: dict[Literal["land_sea_mask", "orography"], StaticFieldConfig] = {}
    """Static fields from files, written with the first ingest. The domain mask (points that
    have data) is always derived from the NaN pattern."""

    @field_validator("variables")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in VARIABLES]
        if bad:
            raise ValueError(f"unknown canonical variables {bad}; see wxmodels.schema")
        if len(set(v)) != len(v):
            raise ValueError("variables are listed twice")
        return v

    @field_validator("store")
    @classmethod
    def _expand_store(cls, v: str) -> str:
        v = expand(v)
        if not v.strip():
            raise ValueError("the store path is empty")
        return v
