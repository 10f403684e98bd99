"""Spatial subsetting and area-weighted coarsening of canonical datasets."""

from __future__ import annotations

import numpy as np
import xarray as xr

from wxmodels.geometry import lat_weights
from wxmodels.schema import LAT, LON

__all__ = ["coarsen", "subset"]


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
