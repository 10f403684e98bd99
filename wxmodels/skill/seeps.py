"""SEEPS (Stable Equitable Error in Probability Space) for precipitation, after Rodwell et al.
(2010) and WeatherBench 2: three categories (dry, light, heavy) from the climatological dry
fraction ``p1`` and the 2/3 quantile of wet amounts at each point; points with ``p1 <= 0.1`` or
``p1 >= 0.85`` are left out. 0 is perfect; a forecast without skill scores about 1.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from wxmodels.schema import LAT, LON
from wxmodels.skill.metrics import spatial_mean, time_mean

__all__ = ["SeepsClimatology", "seeps", "seeps_climatology"]


class SeepsClimatology:
    """Per point: dry fraction ``p1 (H, W)`` and heavy threshold ``heavy (H, W)``."""

    def __init__(self, p1: np.ndarray, heavy: np.ndarray, dry: float):
        self.p1 = p1
        self.heavy = heavy
        self.dry = dry

    def matrix(self) -> np.ndarray:
        """``(3, 3, H, W)`` scores, rows the forecast category, columns the observed."""
        p1 = np.clip(self.p1, 1e-6, 1 - 1e-6)
        z = np.zeros_like(p1)
        return 0.5 * np.array(
            [
                [z, 1 / (1 - p1), 4 / (1 - p1)],
                [1 / p1, z, 3 / (1 - p1)],
                [1 / p1 + 3 / (2 + p1), 3 / (2 + p1), z],
            ]
        )


def seeps_climatology(values: np.ndarray, valid: np.ndarray, dry: float) -> SeepsClimatology:
    """From a record ``values (T, H, W)`` (the training window): dry fraction and the 2/3
    quantile of wet values, per point."""
    wet = np.where(values >= dry, values, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (masked) points
        p1 = np.nanmean(np.where(np.isfinite(values), values < dry, np.nan), axis=0)
        heavy = (
            np.nanquantile(wet, 2 / 3, axis=0)
            if np.isfinite(wet).any()
            else np.full(values.shape[1:], np.inf)
        )
    p1 = np.where(valid, p1, np.nan)
    return SeepsClimatology(p1, np.where(np.isfinite(heavy), heavy, np.inf), dry)


def _category(x: xr.DataArray, clim: SeepsClimatology) -> xr.DataArray:
    heavy = xr.DataArray(clim.heavy, dims=(LAT, LON))
    return xr.where(x < clim.dry, 0, xr.where(x < heavy, 1, 2)).where(x.notnull())


def seeps_times(
    forecast: xr.DataArray, truth: xr.DataArray, clim: SeepsClimatology
) -> xr.DataArray:
    """SEEPS averaged over space (cell-area weights), per init time."""
    fc, ob = _category(forecast, clim), _category(truth, clim)
    ok = fc.notnull() & ob.notnull()
    score = _lookup(clim.matrix(), fc.fillna(0).astype(int), ob.fillna(0).astype(int))
    keep = xr.DataArray((clim.p1 > 0.1) & (clim.p1 < 0.85), dims=(LAT, LON))
    out = spatial_mean(score.where(ok & keep))
    if not isinstance(out, xr.DataArray):
        raise TypeError("SEEPS of a DataArray is a DataArray")
    return out


def seeps(forecast: xr.DataArray, truth: xr.DataArray, clim: SeepsClimatology) -> xr.DataArray:
    """SEEPS averaged over space (cell-area weights) per init time, then over time."""
    out = time_mean(seeps_times(forecast, truth, clim))
    if not isinstance(out, xr.DataArray):
        raise TypeError("SEEPS of a DataArray is a DataArray")
    return out


def _lookup(m: np.ndarray, fi: xr.DataArray, oi: xr.DataArray) -> xr.DataArray:
    """``m[f, o, lat, lon]`` for integer category arrays shaped like the forecast."""
    f = fi.transpose(..., LAT, LON)
    o = oi.transpose(..., LAT, LON)
    hh, ww = np.meshgrid(np.arange(m.shape[2]), np.arange(m.shape[3]), indexing="ij")
    vals = m[f.values, o.values, hh, ww]
    return xr.DataArray(vals, dims=f.dims, coords=f.coords)
