"""Skill metrics on xarray, after WeatherBench 2 (``weatherbench2/metrics.py``).

Every metric averages over space only, per initialisation time (``time``); averaging over time
is :func:`time_mean`, a separate step. NaNs (masked points, missing truth) are left out of both
numerator and weights.

Conventions: forecast, truth and climatology share dims ``(time, [lead_time,] lat, lon)`` where
truth and climatology are taken at the *valid* time of each forecast.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from wxmodels.geometry import lat_weights
from wxmodels.schema import LAT, LON, TIME

__all__ = [
    "acc",
    "acc_times",
    "bias",
    "bias_times",
    "mae",
    "mae_times",
    "mse",
    "rmse",
    "spatial_mean",
    "time_mean",
]


def spatial_mean(x: xr.DataArray | xr.Dataset) -> xr.DataArray | xr.Dataset:
    """``<x> = sum(w x) / sum(w)`` over lat and lon, with cell-area weights, skipping NaN."""
    w = lat_weights(x[LAT])
    return x.weighted(w).mean([LAT, LON], skipna=True)


def time_mean(x: xr.DataArray | xr.Dataset) -> xr.DataArray | xr.Dataset:
    """Mean over initialisation times, skipping times where the metric is undefined."""
    return x.mean(TIME, skipna=True)


def _align_nan(forecast, truth):
    """NaN wherever either side is NaN, so both sides average over the same points."""
    both = forecast.notnull() & truth.notnull()
    return forecast.where(both), truth.where(both)


def mse(forecast, truth):
    """Spatially averaged squared error per init time: ``<(f - o)^2>``."""
    f, o = _align_nan(forecast, truth)
    return spatial_mean((f - o) ** 2)


def rmse(forecast, truth):
    """``sqrt(mean_t <(f - o)^2>)`` (WeatherBench 2: root of the time-mean MSE)."""
    return np.sqrt(time_mean(mse(forecast, truth)))


def mae_times(forecast, truth):
    """``<|f - o|>`` per init time."""
    f, o = _align_nan(forecast, truth)
    return spatial_mean(abs(f - o))


def mae(forecast, truth):
    """``mean_t <|f - o|>``."""
    return time_mean(mae_times(forecast, truth))


def bias_times(forecast, truth):
    """``<f - o>`` per init time."""
    f, o = _align_nan(forecast, truth)
    return spatial_mean(f - o)


def bias(forecast, truth):
    """``mean_t <f - o>``."""
    return time_mean(bias_times(forecast, truth))


def acc_times(forecast, truth, climatology):
    """Uncentred anomaly correlation per init time.

    ``ACC_t = <f' o'> / sqrt(<f'^2> <o'^2>)`` with anomalies against the climatology of the
    valid time. A forecast with no anomaly at all (the climatology itself) scores 0; a time
    whose observed anomaly is identically zero is undefined (NaN).
    """
    f, o = _align_nan(forecast, truth)
    fa, oa = f - climatology, o - climatology
    fvar, ovar = spatial_mean(fa**2), spatial_mean(oa**2)
    acc_t = spatial_mean(fa * oa) / np.sqrt((fvar * ovar).where((fvar > 0) & (ovar > 0)))
    return acc_t.where(~((fvar == 0) & (ovar > 0)), 0.0)


def acc(forecast, truth, climatology):
    """Uncentred anomaly correlation (:func:`acc_times`), averaged over time; undefined times
    are skipped."""
    return time_mean(acc_times(forecast, truth, climatology))
