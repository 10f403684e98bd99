"""Forecasts on the test window, the baselines, and the scorecard built from them.

Arrays here are ``(N, L, V, H, W)``: init times x lead times x variables x grid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.data.fields import Fields
from wxmodels.schema import LAT, LEAD, LON, TIME
from wxmodels.skill import metrics
from wxmodels.skill.seeps import SeepsClimatology, seeps_times

__all__ = [
    "METRICS",
    "add_wind_speed",
    "as_dataset",
    "climatology_forecast",
    "persistence_forecast",
    "reduce_times",
    "run_forecasts",
    "score",
    "score_times",
    "scorecard",
    "scorecard_times",
    "truth_at_leads",
]

StepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
METRICS = ("rmse", "acc", "bias", "mae", "seeps")
PRECIP = "total_precipitation_rate"


def run_forecasts(
    step: StepFn,
    fields: Fields,
    inits: np.ndarray,
    lead_steps: list[int],
    *,
    history: int,
    batch: int = 32,
) -> np.ndarray:
    """Roll ``step`` out from each init and keep the states at ``lead_steps``."""
    nv, (h, w) = fields.data.shape[1], fields.data.shape[2:]
    out = np.full((len(inits), len(lead_steps), nv, h, w), np.nan, np.float32)
    keep = {s: j for j, s in enumerate(lead_steps)}
    for k in range(0, len(inits), batch):
        idx = np.asarray(inits[k : k + batch])
        win = idx[:, None] + np.arange(-history + 1, 1)
        state = fields.data[win]
        tm = fields.hours[idx].astype(np.float32)
        for s in range(1, max(lead_steps) + 1):
            nxt = step(state, tm)
            if s in keep:
                out[k : k + len(idx), keep[s]] = nxt
            state = np.concatenate([state[:, 1:], nxt[:, None]], axis=1)
            tm = tm + np.float32(fields.step_hours)
    return out


def truth_at_leads(fields: Fields, inits: np.ndarray, lead_steps: list[int]) -> np.ndarray:
    """The analysis at each forecast's valid time."""
    return fields.data[np.asarray(inits)[:, None] + np.asarray(lead_steps)[None, :]]


def persistence_forecast(fields: Fields, inits: np.ndarray, lead_steps: list[int]) -> np.ndarray:
    """The state at the init time, for every lead."""
    x = fields.data[np.asarray(inits)]
    return np.repeat(x[:, None], len(lead_steps), axis=1)


def climatology_forecast(
    clim_at: Callable[[np.ndarray], np.ndarray],
    fields: Fields,
    inits: np.ndarray,
    lead_steps: list[int],
) -> np.ndarray:
    """The climatology at each valid time; ``clim_at(hours (n,)) -> (n, V, H, W)``."""
    valid_h = (
        fields.hours[np.asarray(inits)][:, None]
        + np.asarray(lead_steps)[None, :] * fields.step_hours
    )
    flat = clim_at(valid_h.ravel())
    return flat.reshape(*valid_h.shape, *flat.shape[1:]).astype(np.float32)


def as_dataset(
    arr: np.ndarray, fields: Fields, inits: np.ndarray, lead_steps: list[int]
) -> xr.Dataset:
    """Wrap ``(N, L, V, H, W)`` as a Dataset of ``(time, lead_time, lat, lon)`` variables."""
    coords = {
        TIME: pd.to_datetime(fields.hours[np.asarray(inits)] * 3600.0, unit="s"),
        LEAD: np.asarray(lead_steps) * fields.step_hours,
        LAT: fields.lat,
        LON: fields.lon,
    }
    ds = xr.Dataset(
        {v: ((TIME, LEAD, LAT, LON), arr[:, :, i]) for i, v in enumerate(fields.variables)},
        coords=coords,
    )
    ds[LEAD].attrs["units"] = "hours"
    return add_wind_speed(ds)


def add_wind_speed(ds: xr.Dataset) -> xr.Dataset:
    """Derive ``10m_wind_speed`` from the components when they are forecast and it is not."""
    u, v = "10m_u_component_of_wind", "10m_v_component_of_wind"
    if u in ds and v in ds and "10m_wind_speed" not in ds:
        ds = ds.assign({"10m_wind_speed": np.hypot(ds[u], ds[v])})
    return ds


def score_times(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    clim: xr.Dataset,
    seeps_clim: Mapping[str, SeepsClimatology] | None = None,
) -> xr.DataArray:
    """Per init time, the spatial means whose time means are the metrics: DataArray
    ``(metric, variable, lead_time, time)``, where ``rmse`` holds the squared error (its root
    is taken after the time mean). Blocks of inits scored apart and concatenated on ``time``
    reduce (:func:`reduce_times`) to exactly the scores of all of them at once."""
    per = {
        "rmse": metrics.mse(forecast, truth),
        "acc": metrics.acc_times(forecast, truth, clim),
        "bias": metrics.bias_times(forecast, truth),
        "mae": metrics.mae_times(forecast, truth),
    }
    arrs = [per[m].to_array("variable") for m in METRICS if m != "seeps"]
    sp = xr.full_like(arrs[0], np.nan)
    for v, sc in (seeps_clim or {}).items():
        if v in forecast:
            sp.loc[{"variable": v}] = (
                seeps_times(forecast[v], truth[v], sc).transpose(*sp.sel(variable=v).dims).values
            )
    arrs.append(sp)
    return xr.concat(arrs, dim=pd.Index(list(METRICS), name="metric"))


def reduce_times(per: xr.DataArray) -> xr.DataArray:
    """The scores from :func:`score_times` (or :func:`scorecard_times`): the mean over init
    times, skipping undefined ones, and the root for ``rmse``."""
    out = metrics.time_mean(per)
    if not isinstance(out, xr.DataArray):
        raise TypeError("scores of a DataArray are a DataArray")
    if "rmse" in out["metric"]:
        out.loc[{"metric": "rmse"}] = np.sqrt(out.sel(metric="rmse"))
    return out


def score(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    clim: xr.Dataset,
    seeps_clim: Mapping[str, SeepsClimatology] | None = None,
) -> xr.DataArray:
    """All metrics for one forecast: DataArray ``(metric, variable, lead_time)``; SEEPS only for
    precipitation (NaN elsewhere)."""
    return reduce_times(score_times(forecast, truth, clim, seeps_clim))


def scorecard_times(
    forecasts: Mapping[str, xr.Dataset],
    truth: xr.Dataset,
    clim: xr.Dataset,
    seeps_clim: Mapping[str, SeepsClimatology] | None = None,
    regions: Mapping[str, np.ndarray] | None = None,
) -> xr.DataArray:
    """:func:`scorecard` before the time mean: ``(model, metric, variable, lead_time, region,
    time)``, for scoring blocks of inits one after another."""
    masks = {"all": None, **(regions or {})}
    parts = []
    for _name, mask in masks.items():
        if mask is None:
            t, c, fcs = truth, clim, forecasts
        else:
            m = xr.DataArray(mask, dims=(LAT, LON))
            t, c = truth.where(m), clim.where(m)
            fcs = {k: f.where(m) for k, f in forecasts.items()}
        per_model = [score_times(fc, t, c, seeps_clim) for fc in fcs.values()]
        parts.append(xr.concat(per_model, dim=pd.Index(list(forecasts), name="model")))
    sc = xr.concat(parts, dim=pd.Index(list(masks), name="region"))
    sc.name = "score"
    return sc.transpose("model", "metric", "variable", "lead_time", "region", TIME)


def scorecard(
    forecasts: Mapping[str, xr.Dataset],
    truth: xr.Dataset,
    clim: xr.Dataset,
    seeps_clim: Mapping[str, SeepsClimatology] | None = None,
    regions: Mapping[str, np.ndarray] | None = None,
) -> xr.DataArray:
    """Scores of several forecasts: DataArray ``(model, metric, variable, lead_time, region)``;
    region ``all`` is the whole domain, the others are boolean ``(H, W)`` masks."""
    sc = reduce_times(scorecard_times(forecasts, truth, clim, seeps_clim, regions))
    sc.name = "score"
    return sc
