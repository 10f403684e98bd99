"""Tiny, seeded test data made by keyword-only factories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.data.fields import Fields

__all__ = ["canonical_dataset", "make_fields", "net_spec", "tiny_cycle_config"]

SYN_VARS = [
    "2m_temperature",
    "10m_u_component_of_wind",
    "total_precipitation_rate",
    "surface_solar_radiation_downwards",
]


def canonical_dataset(
    *,
    nt: int = 48,
    nlat: int = 6,
    nlon: int = 8,
    start: str = "2020-01-01",
    step_h: int = 1,
    seed: int = 0,
    variables: tuple[str, ...] = ("2m_temperature", "10m_wind_speed"),
) -> xr.Dataset:
    """A canonical dataset (time, lat, lon) with plausible values."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=nt, freq=f"{step_h}h")
    base = {
        "2m_temperature": (280.0, 3.0, "K"),
        "10m_wind_speed": (5.0, 1.0, "m s-1"),
        "total_precipitation_rate": (0.2, 0.1, "mm h-1"),
        "2m_specific_humidity": (0.005, 0.001, "kg kg-1"),
    }
    data = {}
    for v in variables:
        mu, sd, units = base[v]
        x = mu + sd * rng.standard_normal((nt, nlat, nlon)).astype(np.float32)
        if v in ("10m_wind_speed", "total_precipitation_rate"):
            x = np.abs(x)
        data[v] = (("time", "lat", "lon"), x.astype(np.float32), {"units": units})
    return xr.Dataset(
        data, coords={"time": times, "lat": 50.0 + np.arange(nlat), "lon": -5.0 + np.arange(nlon)}
    )


def make_fields(
    *, nt: int = 200, nlat: int = 8, nlon: int = 12, nv: int = 2, seed: int = 0, masked: bool = True
) -> Fields:
    """In-memory fields with a smooth advected signal and (optionally) a NaN sea mask."""
    rng = np.random.default_rng(seed)
    t = np.arange(nt)[:, None, None, None]
    y = np.arange(nlat)[None, None, :, None]
    x = np.arange(nlon)[None, None, None, :]
    v = np.arange(nv)[None, :, None, None]
    data = (
        np.sin(2 * np.pi * (x - 0.3 * t) / nlon + v)
        + 0.3 * np.cos(2 * np.pi * t / 24)
        + 0.05 * y
        + 0.01 * rng.standard_normal((nt, nv, nlat, nlon))
    ).astype(np.float32)
    data = 280.0 + 3.0 * data
    valid = np.ones((nlat, nlon), bool)
    if masked:
        valid[:2, :3] = False
        data[:, :, ~valid] = np.nan
    hours = (pd.Timestamp("2020-01-01").value / 3.6e12) + np.arange(nt, dtype=np.float64)
    variables = ["2m_temperature", "2m_dewpoint_temperature"][:nv]
    return Fields(
        data,
        hours,
        variables,
        50.0 + np.arange(nlat, dtype=float),
        -5.0 + np.arange(nlon, dtype=float),
        1.0,
        valid,
        np.ones(nt, bool),
    )


def net_spec(f: Fields, **net: Any):
    """A small forecaster spec for ``make_fields`` data (two variables)."""
    from wxmodels.nets import ForecasterSpec

    return ForecasterSpec(
        net={"arch": "unet", "width": 4, "depth": 1, "history": 2, **net},
        variables=f.variables,
        lat=f.lat.tolist(),
        lon=f.lon.tolist(),
        step_hours=1.0,
        mean=[280.0] * 2,
        std=[3.0] * 2,
        tendency_std=[0.5] * 2,
    )


def tiny_cycle_config(tmp: Path, **overrides: Any) -> dict[str, Any]:
    """A raw cycle config for a run of about a minute on the synthetic atmosphere."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "workdir": str(tmp / "work"),
        "data": {
            "source": {
                "kind": "synthetic",
                "directory": str(tmp / "landing"),
                "days": 9,
                "nlat": 8,
                "nlon": 12,
                "seed": 3,
            },
            "store": str(tmp / "store.zarr"),
            "variables": SYN_VARS,
            "split": {"train_fraction": 0.5, "val_fraction": 0.15, "gap_hours": 12},
        },
        "net": {"arch": "unet", "width": 8, "depth": 1, "history": 2},
        "train": {
            "epochs": 3,
            "rollout_epochs": 1,
            "rollout_steps": 2,
            "batch_size": 16,
            "max_minutes": 0.5,
            "samples_per_epoch": 96,
        },
        "compress": {
            "max_minutes_per_fit": 0.2,
            "cells": [
                {
                    "name": "prune",
                    "steps": [{"method": "prune", "amount": 0.5, "steps": 1, "finetune_epochs": 1}],
                    "protect": 1,
                },
                {"name": "int8", "steps": [{"method": "int8", "calibration_samples": 8}]},
                {
                    "name": "distill-int8",
                    "steps": [
                        {
                            "method": "distill",
                            "width": 4,
                            "depth": 1,
                            "epochs": 2,
                            "rollout_epochs": 0,
                        },
                        {"method": "int8", "calibration_samples": 8},
                    ],
                },
            ],
        },
        "evaluate": {"leads_h": [1, 3, 6], "init_stride_h": 6, "latency_repeats": 5},
        # latency not gated: on an 8x12 grid every model runs in ~0.1 ms, all overhead and noise
        "gates": {
            "max_rmse_increase": 10.0,
            "beat_persistence": False,
            "beat_climatology": False,
            "max_latency_ratio": None,
        },
        "promote": {"registry": str(tmp / "registry")},
        "runtime": {"n_workers": 2, "threads_per_worker": 1, "torch_threads": 1},
    }
    for key, value in overrides.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return cfg
