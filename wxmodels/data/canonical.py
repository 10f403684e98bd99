"""Map a source dataset onto the canonical schema (:mod:`wxmodels.schema`).

Canonical means: dims ``(time, lat, lon)``, latitude ascending, longitude in [-180, 180) ascending,
canonical variable names and units, float32, pressure levels flattened into ``<name>_<lev>hPa``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from wxmodels.errors import DataError
from wxmodels.schema import LAT, LON, TIME, VARIABLES, get_variable

__all__ = [
    "ALIASES",
    "convert_units",
    "normalise_time_axis",
    "normalise_units",
    "plan_canonical",
    "to_canonical",
]

log = logging.getLogger(__name__)

# Source name -> canonical name. Keys are ERA5/GRIB short names, WFDE5 names, CF standard names
# and WeatherBench 2 / ARCO-ERA5 long names. Names of level variables map to the base name.
ALIASES: Mapping[str, str] = {
    # ERA5 short names (GRIB / CDS NetCDF)
    "t2m": "2m_temperature",
    "d2m": "2m_dewpoint_temperature",
    "u10": "10m_u_component_of_wind",
    "v10": "10m_v_component_of_wind",
    "si10": "10m_wind_speed",
    "tp": "total_precipitation_rate",
    "tcc": "total_cloud_cover",
    "ssrd": "surface_solar_radiation_downwards",
    "strd": "surface_thermal_radiation_downwards",
    "msl": "mean_sea_level_pressure",
    "sp": "surface_pressure",
    "t": "temperature",
    "z": "geopotential",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "q": "specific_humidity",
    "skt": "skin_temperature",
    "sst": "sea_surface_temperature",
    "tcwv": "total_column_water_vapour",
    "u100": "100m_u_component_of_wind",
    "v100": "100m_v_component_of_wind",
    "lcc": "low_cloud_cover",
    "blh": "boundary_layer_height",
    "cape": "convective_available_potential_energy",
    # NCEP/NCAR reanalysis names
    "slp": "mean_sea_level_pressure",
    "pr_wtr": "total_column_water_vapour",
    # WFDE5 / WATCH forcing names
    "Tair": "2m_temperature",
    "Qair": "2m_specific_humidity",
    "Wind": "10m_wind_speed",
    "pr": "total_precipitation_rate",
    "SWdown": "surface_solar_radiation_downwards",
    "LWdown": "surface_thermal_radiation_downwards",
    "PSurf": "surface_pressure",
    # WeatherBench 2 / ARCO-ERA5
    "total_precipitation": "total_precipitation_rate",
    "total_precipitation_1hr": "total_precipitation_rate",
    "total_precipitation_6hr": "total_precipitation_rate",
    "surface_solar_radiation_downwards": "surface_solar_radiation_downwards",
    "specific_humidity": "specific_humidity",
    "temperature": "temperature",
    "geopotential": "geopotential",
    "u_component_of_wind": "u_component_of_wind",
    "v_component_of_wind": "v_component_of_wind",
}

# CF standard_name -> canonical name, used when a variable's own name is unknown.
_STANDARD_NAMES: Mapping[str, str] = {
    "air_temperature": "2m_temperature",
    "specific_humidity": "2m_specific_humidity",
    "wind_speed": "10m_wind_speed",
    "precipitation_flux": "total_precipitation_rate",
    "surface_downwelling_shortwave_flux_in_air": "surface_solar_radiation_downwards",
    "surface_downwelling_longwave_flux_in_air": "surface_thermal_radiation_downwards",
    "air_pressure_at_mean_sea_level": "mean_sea_level_pressure",
    "eastward_wind": "10m_u_component_of_wind",
    "northward_wind": "10m_v_component_of_wind",
    "cloud_area_fraction": "total_cloud_cover",
    "surface_temperature": "skin_temperature",
    "sea_surface_temperature": "sea_surface_temperature",
    "atmosphere_mass_content_of_water_vapor": "total_column_water_vapour",
}

_LEVEL_DIMS = ("isobaricInhPa", "level", "pressure_level", "plev")
_LAT_NAMES = ("lat", "latitude", "y")
_LON_NAMES = ("lon", "longitude", "x")
_ENSEMBLE_DIMS = ("number", "member", "realization")


def normalise_units(units: str | None) -> str:
    """Spell ``units`` one way: ``kg m**-2 s**-1`` and ``kg m^-2 s^-1`` become ``kg m-2 s-1``."""
    if units is None:
        return ""
    u = units.strip().replace("**", "").replace("^", "")
    u = re.sub(r"\s+", " ", u)
    return {
        "degC": "degC",
        "deg_C": "degC",
        "C": "degC",
        "celsius": "degC",
        "Celsius": "degC",
        "degK": "K",
        "kelvin": "K",
        "Kelvin": "K",
        "(0 - 1)": "1",
        "0-1": "1",
        "fraction": "1",
        "m/s": "m s-1",
        "ms-1": "m s-1",
        "W/m2": "W m-2",
        "W/m^2": "W m-2",
        "J/m2": "J m-2",
        "kg/kg": "kg kg-1",
        "kg kg**-1": "kg kg-1",
        "g/kg": "g kg-1",
        "dimensionless": "1",
        "mm/h": "mm h-1",
        "mm/hr": "mm h-1",
        "m2/s2": "m2 s-2",
        "kg m-2": "mm",
        "millibars": "hPa",
        "mbar": "hPa",
        "mb": "hPa",
    }.get(u, u)


def convert_units(
    values: xr.DataArray | None,
    src: str,
    dst: str,
    *,
    step_hours: float | None = None,
    name: str = "",
) -> xr.DataArray:
    """Convert ``values`` from units ``src`` to ``dst``.

    Accumulations (``m``, ``mm``, ``J m-2``) need ``step_hours``, the accumulation period.
    Raises :class:`DataError` for a conversion that is not known.
    """
    s, d = normalise_units(src), normalise_units(dst)
    if values is None:  # a check that the conversion exists (and has what it needs)
        values = xr.DataArray(np.zeros(1, np.float32))
    if s == d:
        return values

    def need_step() -> float:
        if not step_hours:
            raise DataError(
                f"{name}: converting accumulated {s!r} to {d!r} needs the accumulation period; "
                "set the source's accumulation_hours"
            )
        return float(step_hours)

    table = {
        ("degC", "K"): lambda x: x + 273.15,
        ("K", "degC"): lambda x: x - 273.15,
        ("kg m-2 s-1", "mm h-1"): lambda x: x * 3600.0,
        ("mm s-1", "mm h-1"): lambda x: x * 3600.0,
        ("m s-1", "mm h-1"): lambda x: x * 3.6e6,
        ("m", "mm h-1"): lambda x: x * 1000.0 / need_step(),
        ("mm", "mm h-1"): lambda x: x / need_step(),
        ("J m-2", "W m-2"): lambda x: x / (need_step() * 3600.0),
        ("%", "1"): lambda x: x / 100.0,
        ("hPa", "Pa"): lambda x: x * 100.0,
        ("kPa", "Pa"): lambda x: x * 1000.0,
        ("g kg-1", "kg kg-1"): lambda x: x / 1000.0,
        # a mass ratio is dimensionless: CF writes specific humidity as "1" or "kg kg-1"
        ("1", "kg kg-1"): lambda x: x,
        ("kg kg-1", "1"): lambda x: x,
        ("g kg-1", "1"): lambda x: x / 1000.0,
        ("m", "m2 s-2"): lambda x: x * 9.80665,
    }
    try:
        fn = table[(s, d)]
    except KeyError:
        raise DataError(
            f"{name}: cannot convert units {src!r} to {dst!r}; set the source's `units` override "
            "if the file's units attribute is wrong"
        ) from None
    out = fn(values)
    out.attrs = dict(values.attrs)
    return out


# ERA5 experiment versions: "0001" final, "0005" the preliminary ERA5T
_FINAL_EXPVER = "0001"


def normalise_time_axis(ds: xr.Dataset) -> xr.Dataset:
    """Bring the CDS's layouts to one ``time`` dimension, from metadata only.

    * The current CDS NetCDF (written by cfgrib) names the axis ``valid_time``, with a scalar
      ``time`` (or none) and an ``expver`` string coordinate along it: ``valid_time`` becomes
      ``time``; ``expver`` stays a coordinate (dropped when canonical).
    * The older layout has an ``expver`` *dimension* where a request straddled final ERA5 and
      preliminary ERA5T, each step valid in exactly one: the final value is taken where it
      exists, the preliminary one elsewhere.
    """
    if TIME not in ds.dims and "valid_time" in ds.dims:
        if TIME in ds.variables:
            ds = ds.drop_vars(TIME)
        ds = ds.rename({"valid_time": TIME})
    if "expver" in ds.dims:
        versions = [str(v) for v in ds["expver"].values]
        order = sorted(range(len(versions)), key=lambda i: versions[i] != _FINAL_EXPVER)
        parts = [ds.isel(expver=i, drop=True) for i in order]
        out = parts[0]
        for part in parts[1:]:
            out = out.combine_first(part)
        ds = out
    return ds


def _find(ds: xr.Dataset, names: tuple[str, ...], what: str) -> str:
    for n in names:
        if n in ds.dims or n in ds.coords:
            return n
    raise DataError(f"no {what} coordinate found (looked for {', '.join(names)})")


def _canonical_name(name: str, da: xr.DataArray, rename: Mapping[str, str]) -> str | None:
    if name in rename:
        return rename[name]
    if name in VARIABLES:
        return name
    if name in ALIASES:
        return ALIASES[name]
    std = str(da.attrs.get("standard_name", ""))
    if std in _STANDARD_NAMES:
        return _by_standard_name(name, std, da)
    return None


# canonical variables a CF standard_name names only together with a height coordinate
_AT_HEIGHT = {"2m_temperature": 2.0, "2m_specific_humidity": 2.0, "10m_wind_speed": 10.0}
_AT_HEIGHT.update({"10m_u_component_of_wind": 10.0, "10m_v_component_of_wind": 10.0})
_HEIGHT_NAMES = ("height", "heightAboveGround", "z", "elevation")
_PRESSURE_NAMES = ("plev", "level", "pressure_level", "isobaricInhPa", "pressure", "lev")


def _coordinate(da: xr.DataArray, names: tuple[str, ...], std: str) -> xr.DataArray | None:
    for c in da.coords.values():
        if c.ndim <= 1 and (c.name in names or c.attrs.get("standard_name") == std):
            return c
    return None


def _by_standard_name(name: str, std: str, da: xr.DataArray) -> str:
    """The canonical variable a CF ``standard_name`` stands for, established by the vertical
    coordinate: ``air_temperature`` is 2 m temperature only with a ``height`` coordinate of
    2 m. Without one (or on pressure levels) the variable is ambiguous: an error naming what
    is missing, never a guess."""
    base = _STANDARD_NAMES[std]
    want = _AT_HEIGHT.get(base)
    if want is None:
        return base
    pressure = _coordinate(da, _PRESSURE_NAMES, "air_pressure")
    if pressure is not None:
        raise DataError(
            f"{name}: standard_name {std!r} on pressure levels ({pressure.name}) is not "
            f"{base}; map it with `rename` (e.g. {{{name}: {base.split('_', 1)[1]}}}) "
            "to a pressure-level variable"
        )
    height = _coordinate(da, _HEIGHT_NAMES, "height")
    if height is None or height.size != 1:
        raise DataError(
            f"{name}: standard_name {std!r} without a height or pressure coordinate is "
            f"ambiguous (at {want:g} m it would be {base}); add a `height` coordinate or "
            f"map it explicitly with `rename: {{{name}: ...}}`"
        )
    h = float(np.asarray(height.values).ravel()[0])
    if str(height.attrs.get("units", "m")).strip() in ("km",):
        h *= 1000.0
    if abs(h - want) > 0.5:
        raise DataError(
            f"{name}: standard_name {std!r} at height {h:g} m is not {base} ({want:g} m); "
            "map it explicitly with `rename`"
        )
    return base


def _order(v: np.ndarray) -> tuple[str, int]:
    """How to make the coordinate ``v`` ascending: ``("keep", 0)``, ``("flip", 0)`` (it is
    descending), ``("roll", k)`` (a wrapped longitude axis that starts ascending at ``k``) or
    ``("sort", 0)``."""
    d = np.diff(v)
    if len(v) < 2 or np.all(d > 0):
        return "keep", 0
    if np.all(d < 0):
        return "flip", 0
    k = int(np.argmin(v))
    if np.all(np.diff(np.roll(v, -k)) > 0):
        return "roll", k
    return "sort", 0


def _flip_roll(x: np.ndarray, flip: bool, k: int) -> np.ndarray:
    """``x[..., ::-1, :]`` (when ``flip``) rolled by ``-k`` on the last axis, in one copy."""
    if flip:
        x = x[..., ::-1, :]
    if not k:
        return np.ascontiguousarray(x)
    out = np.empty(x.shape, x.dtype)
    n = x.shape[-1]
    out[..., : n - k] = x[..., k:]
    out[..., n - k :] = x[..., :k]
    return out


def _lat_lon_ascending(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` (dims ``(time, lat, lon)``) with ascending latitudes and longitudes. The common
    cases (latitudes descending, a longitude axis from 0 to 360) are one copy of each chunk
    when it is read, in the same task as its read (xarray's reversal and roll would add a
    chunk split, a concatenation and a rechunk per variable)."""
    lat_op, _ = _order(ds[LAT].values)
    lon_op, k = _order(ds[LON].values)
    if lat_op == "keep" and lon_op == "keep":
        return ds
    whole = all(
        v.dims == (TIME, LAT, LON)
        and (v.chunks is None or (len(v.chunks[1]) == 1 and len(v.chunks[2]) == 1))
        for v in ds.data_vars.values()
    )
    if lat_op == "sort" or lon_op == "sort" or not whole:
        return _ascending(_ascending(ds, LAT), LON)
    flip = lat_op == "flip"
    lat = ds[LAT][::-1] if flip else ds[LAT]
    lon = ds[LON].roll({LON: -k}, roll_coords=True)
    out = {}
    for name, v in ds.data_vars.items():
        data = v.data
        if v.chunks is None:
            data = _flip_roll(np.asarray(data), flip, k)
        else:
            data = data.map_blocks(_flip_roll, flip, k, dtype=data.dtype)
        out[name] = xr.DataArray(data, dims=v.dims, attrs=v.attrs)
    coords = {TIME: ds[TIME], LAT: lat.values, LON: lon.values}
    res = xr.Dataset(out, coords=coords, attrs=ds.attrs)
    res[LAT].attrs, res[LON].attrs = ds[LAT].attrs, ds[LON].attrs
    return res


def _ascending(ds: xr.Dataset, dim: str) -> xr.Dataset:
    """Sort ``dim`` ascending, with cheap lazy slices in the common cases (descending: one
    reversal; a wrapped longitude axis: one roll) and a general sort otherwise."""
    op, k = _order(ds[dim].values)
    if op == "flip":
        return ds.isel({dim: slice(None, None, -1)})
    if op == "roll":
        return ds.roll({dim: -k}, roll_coords=True)
    return ds.sortby(dim) if op == "sort" else ds


@dataclass(frozen=True)
class _Piece:
    source: str
    level_dim: str | None
    level: float | None
    name: str
    src_units: str


def plan_canonical(
    ds: xr.Dataset,
    *,
    rename: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    accumulation_hours: float | None = None,
) -> list[_Piece]:
    """Decide, from metadata alone, which source variable becomes which canonical variable and
    how its units convert. Raises :class:`DataError` for what :func:`to_canonical` would refuse
    (so that a bad input is set aside before any data is read)."""
    rename = dict(rename or {})
    units = dict(units or {})
    lat = _find(ds, _LAT_NAMES, "latitude")
    lon = _find(ds, _LON_NAMES, "longitude")
    if TIME not in ds.dims:
        raise DataError("no `time` dimension; sources without one must build it (see sources)")
    pieces: list[_Piece] = []
    for name, da in ds.data_vars.items():
        dims = set(da.dims)
        if not {lat, lon} <= dims or TIME not in dims:
            continue
        base = _canonical_name(str(name), da, rename)
        if base is None:
            log.info("dropping %s: no canonical name (add it to `rename`)", name)
            continue
        level_dim = next((d for d in _LEVEL_DIMS if d in da.dims), None)
        levels = (
            [(level_dim, float(lev), f"{base}_{int(lev)}hPa") for lev in ds[level_dim].values]
            if level_dim
            else [(None, None, base)]
        )
        for ldim, lev, cname in levels:
            if cname not in VARIABLES and ldim is None and f"{cname}_1000hPa" in VARIABLES:
                log.info("dropping %s: %s needs a pressure level", name, cname)
                continue
            if cname not in VARIABLES:
                log.info("dropping %s: %s is not a canonical variable", name, cname)
                continue
            var = get_variable(cname)
            src_units = units.get(str(name), da.attrs.get("units") or da.attrs.get("GRIB_units"))
            if not src_units:
                raise DataError(
                    f"{name}: no units attribute; set `units: {{{name}: ...}}` in the source config"
                )
            convert_units(
                None, src_units, var.units, step_hours=accumulation_hours, name=str(name)
            )  # checks the conversion exists
            extra = [d for d in da.dims if d not in (TIME, lat, lon, ldim, *_ENSEMBLE_DIMS)]
            if extra:
                raise DataError(f"{name}: unexpected dimensions {extra}; select or reduce them")
            if any(p.name == cname for p in pieces):
                raise DataError(f"two source variables map to {cname}; disambiguate with `rename`")
            pieces.append(_Piece(str(name), ldim, lev, cname, src_units))
    if not pieces:
        raise DataError("no variable of the source maps to a canonical variable")
    return pieces


def to_canonical(
    ds: xr.Dataset,
    *,
    rename: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    variables: list[str] | None = None,
    accumulation_hours: float | None = None,
    member: str | int = "mean",
) -> xr.Dataset:
    """Return ``ds`` in the canonical schema (lazily: dask-backed inputs stay dask-backed).

    Args:
        ds: source dataset with a time dim, lat/lon (any common spelling), variables under
            ERA5, WFDE5, CF or WeatherBench 2 names.
        rename: explicit ``{source name: canonical name}``; wins over the alias tables.
        units: ``{source name: units}`` for files whose units attribute is missing or wrong.
        variables: canonical variables to keep (all mapped ones when ``None``). A variable asked
            for and absent raises :class:`DataError`.
        accumulation_hours: accumulation period of accumulated fields (ERA5 ``tp``, ``ssrd``).
        member: ensemble handling: ``"mean"`` or a member number to select.

    Returns:
        dataset with dims ``(time, lat, lon)`` (float32 variables) and the source's attributes.
    """
    plan = plan_canonical(ds, rename=rename, units=units, accumulation_hours=accumulation_hours)
    if variables is not None:
        have = {p.name for p in plan}
        missing = [v for v in variables if v not in have]
        if missing:
            raise DataError(
                f"variable(s) {', '.join(missing)} not found in the source "
                f"(it provides: {', '.join(sorted(have)) or 'nothing mappable'})"
            )
        plan = [p for p in plan if p.name in variables]
    lat = _find(ds, _LAT_NAMES, "latitude")
    lon = _find(ds, _LON_NAMES, "longitude")
    ds = ds.rename({lat: LAT, lon: LON}) if (lat, lon) != (LAT, LON) else ds
    for edim in _ENSEMBLE_DIMS:
        if edim in ds.dims:
            if member == "mean":
                ds = ds.mean(edim, keep_attrs=True)
            else:
                ds = ds.sel({edim: int(member)}, drop=True)
    out: dict[str, xr.DataArray] = {}
    for p in plan:
        piece = ds[p.source]
        if p.level_dim is not None:
            piece = piece.sel({p.level_dim: p.level}, drop=True)
        var = get_variable(p.name)
        piece = convert_units(
            piece, p.src_units, var.units, step_hours=accumulation_hours, name=p.source
        )
        if piece.dims != (TIME, LAT, LON):
            piece = piece.transpose(TIME, LAT, LON)
        if piece.dtype != np.float32:
            piece = piece.astype("float32")
        piece.attrs = {
            "units": var.units,
            "long_name": var.long_name,
            **({"standard_name": var.standard_name} if var.standard_name else {}),
            "source_name": p.source,
        }
        piece.encoding = {}
        out[p.name] = piece
    if variables is not None:
        out = {v: out[v] for v in variables}
    res = xr.Dataset(out, attrs={k: v for k, v in ds.attrs.items() if isinstance(v, str)})
    keep = [c for c in res.coords if c not in (TIME, LAT, LON)]
    res = res.drop_vars(keep)
    lon_vals = res[LON].values
    if np.any(lon_vals >= 180.0):
        res = res.assign_coords({LON: ((res[LON] + 180.0) % 360.0) - 180.0})
    res = _lat_lon_ascending(res)
    res[LAT].attrs = {"units": "degrees_north", "standard_name": "latitude"}
    res[LON].attrs = {"units": "degrees_east", "standard_name": "longitude"}
    return res
