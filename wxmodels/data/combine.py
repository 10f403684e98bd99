"""Putting inputs together: their grid identity, combining them along time and variables, and
building a time axis for files that have none."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.data.canonical import _LAT_NAMES, _LON_NAMES, _find
from wxmodels.errors import DataError
from wxmodels.schema import TIME

__all__ = ["combine", "grid_key", "time_from_step"]


def grid_key(raw: xr.Dataset) -> tuple:
    lat = raw[_find(raw, _LAT_NAMES, "latitude")].values
    lon = raw[_find(raw, _LON_NAMES, "longitude")].values
    return tuple(np.round(lat, 6)), tuple(np.round(lon, 6))


def combine(datasets: list[xr.Dataset]) -> xr.Dataset:
    """Combine inputs along time and variables. Grids are identical (checked before), so an
    exact join suffices in the usual case; inputs covering different times per variable need
    the outer join (the steps one variable lacks are then missing, and reported)."""
    kw: dict[str, Any] = {
        "combine_attrs": "drop_conflicts",
        "data_vars": "all",
        "coords": "minimal",
        "compat": "no_conflicts",
    }
    if len(datasets) == 1:
        return datasets[0]
    try:
        out = xr.combine_by_coords(datasets, join="exact", **kw)
    except ValueError:
        try:
            out = xr.combine_by_coords(datasets, join="outer", **kw)
        except ValueError:
            # copies of the same steps (source overlap: merge): nothing to order them by
            out = xr.merge(
                datasets, compat="no_conflicts", join="outer", combine_attrs="drop_conflicts"
            )
    if not isinstance(out, xr.Dataset):
        raise DataError("the inputs combine into a single array, not a dataset")
    return out


def time_from_step(raw: xr.Dataset, cfg) -> xr.Dataset:
    if cfg.dim not in raw.dims:
        raise DataError(f"no time coordinate and no {cfg.dim!r} dimension to build one from")
    ref = cfg.reference
    if ref is None:
        if cfg.reference_variable not in raw.variables:
            raise DataError(
                f"no time coordinate and no {cfg.reference_variable!r} variable "
                "with the reference time; set time_from_step.reference"
            )
        val = raw[cfg.reference_variable].values
        ref = (val.item().decode() if isinstance(val.item(), bytes) else str(val.item())).strip()
    try:
        t0 = pd.Timestamp(ref.replace("/", "-"))
    except ValueError:
        t0 = pd.to_datetime(ref, format="%Y %m %d %H:%M")
    steps = pd.to_timedelta(raw[cfg.dim].values.astype(np.float64), unit=cfg.units)
    raw = raw.drop_vars([cfg.reference_variable], errors="ignore")
    return raw.rename({cfg.dim: TIME}).assign_coords({TIME: (t0 + steps).values})
