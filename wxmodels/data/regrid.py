"""Spatial subsetting, area-weighted coarsening, and regridding inputs to a target grid."""

from __future__ import annotations

import numpy as np
import xarray as xr

from wxmodels.geometry import lat_weights
from wxmodels.schema import LAT, LON

__all__ = ["coarsen", "default_method", "describe_grid", "regrid_raw", "subset", "target_grid"]


def subset(ds: xr.Dataset, lat_bounds=None, lon_bounds=None) -> xr.Dataset:
    """Keep ``lat_bounds = (south, north)`` and ``lon_bounds = (west, east)`` (inclusive)."""
    if lat_bounds is not None:
        ds = ds.sel({LAT: slice(min(lat_bounds), max(lat_bounds))})
    if lon_bounds is not None:
        ds = ds.sel({LON: slice(*lon_bounds)})
    if ds.sizes[LAT] == 0 or ds.sizes[LON] == 0:
        from wxmodels.errors import DataError

        raise DataError(f"the subset lat {lat_bounds} lon {lon_bounds} holds no grid point")
    return ds


def coarsen(ds: xr.Dataset, factor: int) -> xr.Dataset:
    """Average ``factor x factor`` blocks weighted by cell area, ignoring NaNs (a block with
    no data stays NaN). Trailing rows/columns that do not fill a block are dropped."""
    w = lat_weights(ds[LAT]).broadcast_like(ds[LON]).transpose(LAT, LON)
    out = {}
    for v in ds.data_vars:
        x = ds[v]
        ok = x.notnull()
        num = (x.fillna(0) * w).coarsen({LAT: factor, LON: factor}, boundary="trim").sum()
        den = (ok * w).coarsen({LAT: factor, LON: factor}, boundary="trim").sum()
        out[v] = (num / den.where(den > 0)).astype(np.float32).assign_attrs(x.attrs)
    res = xr.Dataset(out, attrs=ds.attrs)
    lat = ds[LAT].coarsen({LAT: factor}, boundary="trim").mean()
    lon = ds[LON].coarsen({LON: factor}, boundary="trim").mean()
    return res.assign_coords({LAT: lat.values, LON: lon.values})


# canonical variables whose area integral matters: remapped conservatively
_FLUX_UNITS = {"mm h-1", "W m-2", "mm", "J m-2"}


def default_method(variable: str) -> str:
    """``conservative`` for fluxes and rates (precipitation, radiation), ``linear`` for
    states (temperature, wind, pressure, humidity, cover)."""
    from wxmodels.schema import get_variable

    return "conservative" if get_variable(variable).units in _FLUX_UNITS else "linear"


def target_grid(cfg) -> xr.Dataset:
    """The target grid of a :class:`~wxmodels.config.data.TargetGridConfig` as an empty
    Dataset with ascending ``lat`` and ``lon`` (-180..180) coordinates."""
    if cfg.kind == "file":
        from wxmodels.config.data import expand
        from wxmodels.data.canonical import _LAT_NAMES, _LON_NAMES, _find

        with xr.open_dataset(expand(cfg.path)) as g:
            lat = np.asarray(g[_find(g, _LAT_NAMES, "latitude")].values, float)
            lon = np.asarray(g[_find(g, _LON_NAMES, "longitude")].values, float)
    else:
        r = float(cfg.resolution)
        s, n = sorted(cfg.lat_bounds)
        lat = np.arange(s, n + r / 2, r)
        w, e = cfg.lon_bounds if cfg.lon_bounds is not None else (-180.0, 180.0 - r)
        lon = np.arange(w, e + r / 2, r)
    lon = np.sort(((lon + 180.0) % 360.0) - 180.0)
    return xr.Dataset(coords={LAT: np.sort(lat), LON: lon})


def describe_grid(lat: np.ndarray, lon: np.ndarray) -> str:
    """``94x192 lat -88.54..88.54 lon 0..358.1 (irregular in lat)``"""
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    d = np.diff(lat)
    kind = "regular" if len(d) and np.allclose(d, d[0], rtol=1e-3) else "irregular in lat"
    return (
        f"{len(lat)}x{len(lon)} lat {lat.min():.4g}..{lat.max():.4g} "
        f"lon {lon.min():.4g}..{lon.max():.4g} ({kind})"
    )


def regrid_raw(
    raw: xr.Dataset, lat_name: str, lon_name: str, target: xr.Dataset, methods: dict[str, str]
) -> tuple[xr.Dataset, dict]:
    """Regrid the variables of one raw input (``methods``: ``{source variable: method}``) to
    ``target``; its horizontal coordinates become ascending ``lat``/``lon`` in -180..180.
    Returns the regridded input and what was done (for the store's history)."""
    import xarray_regrid  # noqa: F401  (registers the .regrid accessor)

    before = describe_grid(raw[lat_name].values, raw[lon_name].values)
    ds = raw.rename({lat_name: LAT, lon_name: LON}) if (lat_name, lon_name) != (LAT, LON) else raw
    lon = ds[LON].values
    if np.any(lon >= 180.0):
        ds = ds.assign_coords({LON: ((ds[LON] + 180.0) % 360.0) - 180.0})
    ds = ds.sortby(LAT).sortby(LON)
    same = (
        ds.sizes[LAT] == target.sizes[LAT]
        and ds.sizes[LON] == target.sizes[LON]
        and np.allclose(ds[LAT].values, target[LAT].values, atol=1e-6)
        and np.allclose(ds[LON].values, target[LON].values, atol=1e-6)
    )
    if same:
        return ds, {"grid": before, "regridded": {}}
    out = {}
    for v in ds.data_vars:
        m = methods.get(str(v))
        if m is None:
            continue
        x = ds[[v]]
        if m == "conservative":
            y = x.regrid.conservative(target, latitude_coord=LAT, skipna=True, nan_threshold=0.5)
        elif m == "linear":
            y = x.regrid.linear(target)
        else:
            y = x.regrid.nearest(target)
        out[v] = y[v].astype(np.float32).assign_attrs(ds[v].attrs)
    res = xr.Dataset(out, attrs=ds.attrs).assign_coords(
        {LAT: target[LAT].values, LON: target[LON].values}
    )
    return res, {"grid": before, "regridded": {str(v): m for v, m in methods.items()}}
