"""Checks a canonical dataset must pass before it may touch the store."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.errors import DataError
from wxmodels.schema import LAT, LON, TIME, get_variable

__all__ = ["check_times", "validate"]


def check_times(times: np.ndarray, what: str = "source") -> None:
    """Raise :class:`DataError` on duplicated or decreasing time steps."""
    t = np.asarray(times)
    if len(t) == 0:
        raise DataError(f"{what} has no time steps")
    uniq, counts = np.unique(t, return_counts=True)
    if (counts > 1).any():
        raise DataError(
            f"{what} has duplicated time steps (first: {pd.Timestamp(uniq[counts > 1][0])})"
        )
    if np.any(np.diff(t.astype("datetime64[s]").astype(np.int64)) <= 0):
        bad = int(np.argmax(np.diff(t.astype("datetime64[s]").astype(np.int64)) <= 0))
        raise DataError(f"{what} has time steps out of order (at {pd.Timestamp(t[bad + 1])})")


def validate(ds: xr.Dataset, *, max_nan_fraction: float, what: str = "source") -> dict[str, dict]:
    """Validate ranges, NaNs and times of a canonical dataset (computes one pass over it).

    A point that is NaN at every step is treated as outside the domain (the static land-sea
    mask); the NaN fraction is measured over the remaining points.

    Returns:
        per-variable statistics ``{var: {min, max, nan_fraction, masked_fraction}}``.

    Raises:
        DataError: naming the variable and the problem.
    """
    check_times(ds[TIME].values, what)
    lazy = {}
    for v in ds.data_vars:
        da = ds[v]
        isnan = da.isnull()
        masked = isnan.all(TIME)
        lazy[v] = (da.min(), da.max(), isnan.sum(), masked.sum())
    (computed,) = dask.compute(lazy)
    n_t, n_y, n_x = ds.sizes[TIME], ds.sizes[LAT], ds.sizes[LON]
    stats: dict[str, dict] = {}
    for v, (vmin, vmax, n_nan, n_masked) in computed.items():
        var = get_variable(str(v))
        n_masked = int(n_masked)
        if n_masked == n_y * n_x:
            raise DataError(f"{what}: {v} is NaN everywhere")
        inside = n_t * (n_y * n_x - n_masked)
        frac = (int(n_nan) - n_masked * n_t) / inside
        vmin, vmax = float(vmin), float(vmax)
        if frac > max_nan_fraction:
            raise DataError(
                f"{what}: {v} has {frac:.1%} NaNs inside its domain (limit {max_nan_fraction:.1%})"
            )
        if vmin < var.valid_min or vmax > var.valid_max:
            hint = ""
            if var.units == "K" and vmax < 100:
                hint = " (looks like degC: set `units: {name: degC}`)"
            raise DataError(
                f"{what}: {v} ranges {vmin:.4g}..{vmax:.4g} {var.units}, outside the plausible "
                f"{var.valid_min:g}..{var.valid_max:g}{hint}"
            )
        stats[str(v)] = {
            "min": vmin,
            "max": vmax,
            "nan_fraction": frac,
            "masked_fraction": n_masked / (n_y * n_x),
        }
    return stats
