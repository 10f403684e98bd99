"""Scorecards (``model x metric x variable x lead_time [x region]``): JSON and lookups.

JSON: ``{model: {metric: {variable: {lead_h: value}}}}`` for the whole domain; regional cards
are the same shape, keyed by region, where a scorecard has them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["from_json", "merge", "regions_json", "to_json", "value"]


def to_json(sc: xr.DataArray, region: str = "all") -> dict[str, Any]:
    """``{model: {metric: {variable: {lead_h: value}}}}`` with NaN as ``None``."""
    if "region" in sc.dims:
        sc = sc.sel(region=region)
    out: dict[str, Any] = {}
    for m in sc["model"].values:
        out[str(m)] = {}
        for k in sc["metric"].values:
            out[str(m)][str(k)] = {}
            for v in sc["variable"].values:
                vals = sc.sel(model=m, metric=k, variable=v).values
                out[str(m)][str(k)][str(v)] = {
                    f"{float(lead):g}": (None if not np.isfinite(x) else float(x))
                    for lead, x in zip(sc["lead_time"].values, vals, strict=True)
                }
    return out


def regions_json(sc: xr.DataArray) -> dict[str, Any]:
    """The regional cards (every region but ``all``)."""
    if "region" not in sc.dims:
        return {}
    return {str(r): to_json(sc, str(r)) for r in sc["region"].values if str(r) != "all"}


def from_json(obj: dict[str, Any]) -> xr.DataArray:
    """Inverse of :func:`to_json` (no region dim)."""
    models = list(obj)
    metrics_ = list(obj[models[0]])
    variables = list(obj[models[0]][metrics_[0]])
    leads = list(obj[models[0]][metrics_[0]][variables[0]])
    data = np.array(
        [
            [
                [
                    [np.nan if obj[m][k][v][lead] is None else obj[m][k][v][lead] for lead in leads]
                    for v in variables
                ]
                for k in metrics_
            ]
            for m in models
        ],
        dtype=float,
    )
    return xr.DataArray(
        data,
        dims=("model", "metric", "variable", "lead_time"),
        coords={
            "model": models,
            "metric": metrics_,
            "variable": variables,
            "lead_time": [float(x) for x in leads],
        },
        name="score",
    )


def merge(*cards: xr.DataArray) -> xr.DataArray:
    """Concatenate scorecards along ``model`` (later cards win on duplicate names)."""
    seen: dict[str, xr.DataArray] = {}
    for sc in cards:
        for m in sc["model"].values:
            seen[str(m)] = sc.sel(model=[m])
    return xr.concat(list(seen.values()), dim="model")


def value(sc: xr.DataArray, model: str, metric: str, variable: str, lead: float) -> float:
    return float(sc.sel(model=model, metric=metric, variable=variable, lead_time=lead))
