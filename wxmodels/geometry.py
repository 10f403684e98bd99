"""Latitude (cell-area) weights, in one place (WeatherBench 2 ``get_lat_weights``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from wxmodels.schema import LAT

__all__ = ["lat_weights", "lat_weights_np"]


def lat_weights_np(lat: np.ndarray) -> np.ndarray:
    """Cell-area weights ``sin(phi_upper) - sin(phi_lower)``, normalised to mean 1.

    Cell bounds are the midpoints between latitudes; the outer bounds are extrapolated by half a
    cell and clipped to +-90. Works for uneven spacing. Shape ``(H,)`` -> ``(H,)``.
    """
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size == 1:
        return np.ones(1)
    order = np.argsort(lat)
    s = lat[order]
    mid = (s[1:] + s[:-1]) / 2
    lower = np.concatenate([[s[0] - (mid[0] - s[0])], mid])
    upper = np.concatenate([mid, [s[-1] + (s[-1] - mid[-1])]])
    lower, upper = np.clip(lower, -90, 90), np.clip(upper, -90, 90)
    w = np.sin(np.deg2rad(upper)) - np.sin(np.deg2rad(lower))
    out = np.empty_like(w)
    out[order] = w
    return out / out.mean()


def lat_weights(lat: xr.DataArray) -> xr.DataArray:
    """:func:`lat_weights_np` as a DataArray on the ``lat`` dimension."""
    return xr.DataArray(lat_weights_np(lat.values), dims=[LAT], coords={LAT: lat.values})
