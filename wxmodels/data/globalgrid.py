"""A SYNTHETIC global atmosphere at WeatherBench 2 resolutions, for scale tests (not real data).

One NetCDF file per day in the CDS layout (ERA5 short names, latitude descending, longitude
0..360, pressure levels on a ``level`` dimension), generated a day at a time so a year of the
1.5-degree grid (121 x 240, ~9 GB of float32) never sits in memory. The fields are analytic and
coupled like the regional generator's (:mod:`wxmodels.data.synthetic`): Rossby waves travelling
eastward on the sphere with slowly varying amplitudes give the pressure, the geostrophic wind
and the temperature anomalies; the sun (day of year, hour, longitude) gives radiation and the
diurnal cycle; humidity and cloud follow the waves, precipitation the cloud.

Variables (10): ``t2m u10 v10 msl tcc tp ssrd`` at the surface, ``t`` at 850 and 500 hPa and
``z`` at 500 hPa.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.data.synthetic import SYNTHETIC_LABEL

__all__ = ["GLOBAL_VARIABLES", "global_day", "write_global_files"]

log = logging.getLogger(__name__)

GLOBAL_VARIABLES = [
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "total_cloud_cover",
    "total_precipitation_rate",
    "surface_solar_radiation_downwards",
    "temperature_850hPa",
    "temperature_500hPa",
    "geopotential_500hPa",
]
"""The canonical names the store holds after ingest."""

_OMEGA = 7.292e-5
_G = 9.80665


def _grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    nlat = round(180.0 / resolution) + 1
    nlon = round(360.0 / resolution)
    return np.linspace(90.0, -90.0, nlat), np.arange(nlon) * resolution


def _waves(seed: int, n: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "m": rng.integers(3, 9, n),  # zonal wavenumbers
        "lat0": rng.uniform(-60, 60, n),  # storm-track centres
        "width": rng.uniform(12, 25, n),
        "speed": rng.uniform(5.0, 15.0, n),  # degrees of longitude per day
        "phase": rng.uniform(0, 2 * np.pi, n),
        "amp": rng.uniform(600.0, 1400.0, n),  # Pa of sea-level pressure
        "period": rng.uniform(3.0, 9.0, n),  # days: growth and decay
    }


def global_day(day: pd.Timestamp, *, resolution: float = 1.5, seed: int = 0) -> xr.Dataset:
    """The 24 hourly steps of ``day`` (deterministic for ``seed`` and the day)."""
    lat, lon = _grid(resolution)
    times = pd.date_range(day, periods=24, freq="h")
    t_h = (times - pd.Timestamp("2000-01-01")).total_seconds().values / 3600.0
    d = t_h[:, None, None] / 24.0  # days, (T, 1, 1)
    la, lo = np.deg2rad(lat)[None, :, None], np.deg2rad(lon)[None, None, :]
    wv = _waves(seed)
    p = np.zeros((24, len(lat), len(lon)))
    dpdx = np.zeros_like(p)
    dpdy = np.zeros_like(p)
    for k in range(len(wv["m"])):
        env = np.exp(-(((lat[None, :, None] - wv["lat0"][k]) / wv["width"][k]) ** 2))
        arg = wv["m"][k] * (lo - np.deg2rad(wv["speed"][k]) * d) + wv["phase"][k]
        amp = wv["amp"][k] * (0.6 + 0.4 * np.sin(2 * np.pi * d / wv["period"][k] + k))
        p += amp * env * np.cos(arg)
        dpdx += -amp * env * wv["m"][k] * np.sin(arg)  # per radian of longitude
        dlat = -2 * (lat[None, :, None] - wv["lat0"][k]) / wv["width"][k] ** 2 * 180 / np.pi
        dpdy += amp * dlat * env * np.cos(arg)  # per radian of latitude
    rng = np.random.default_rng([seed, int(day.value // 86_400_000_000_000) % 2**31])
    noise = rng.standard_normal((24, len(lat), len(lon))) * 0.3
    r_e, rho = 6.371e6, 1.2
    f = 2 * _OMEGA * np.sin(la)
    f = np.where(np.abs(f) < 2e-5, np.sign(f + 1e-12) * 2e-5, f)  # no geostrophy at the equator
    u = -dpdy / (rho * f * r_e)
    v = dpdx / (rho * f * r_e * np.maximum(np.cos(la), 0.05))
    u = np.clip(u + 12.0 * np.cos(2 * la) ** 2 * np.sign(np.abs(lat[None, :, None]) - 25), -60, 60)
    v = np.clip(v, -60, 60)
    doy = times.day_of_year.values[:, None, None]
    decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    hour = times.hour.values[:, None, None]
    hour_angle = np.deg2rad(15.0 * (hour + 0.5 - 12.0)) + lo
    cosz = np.sin(la) * np.sin(decl) + np.cos(la) * np.cos(decl) * np.cos(hour_angle)
    season = np.sin(2 * np.pi * (doy - 80) / 365.25) * np.sign(la)
    t_base = 300.0 - 45.0 * np.sin(la) ** 2 + 8.0 * season * np.abs(np.sin(la))
    t_anom = -p / 250.0 + noise
    humid = 1.0 / (1.0 + np.exp(-(-p / 500.0 + 2.0 * noise + 1.5 * np.cos(la) - 1.0)))
    cloud = np.clip(humid, 0.0, 1.0)
    ssrd = 1361.0 * 0.75 * np.maximum(cosz, 0.0) * (1.0 - 0.7 * cloud**3)
    t2m = t_base + t_anom + 3.0 * np.maximum(cosz, -0.2)
    precip_mm = np.maximum(0.0, cloud - 0.7) * 5.0
    t850 = t2m - 12.0 + 0.5 * t_anom
    t500 = t2m - 40.0 + 0.3 * t_anom
    z500 = _G * (5500.0 + 0.09 * p + 8.0 * (t_base - 270.0))
    f32 = np.float32
    surface = {
        "t2m": (t2m, "2 metre temperature", "K"),
        "u10": (0.7 * u, "10 metre U wind component", "m s**-1"),
        "v10": (0.7 * v, "10 metre V wind component", "m s**-1"),
        "msl": (101325.0 + p, "Mean sea level pressure", "Pa"),
        "tcc": (cloud, "Total cloud cover", "(0 - 1)"),
        "tp": (precip_mm / 1000.0, "Total precipitation", "m"),
        "ssrd": (ssrd * 3600.0, "Surface short-wave (solar) radiation downwards", "J m**-2"),
    }
    data: dict[str, tuple] = {
        k: (("time", "latitude", "longitude"), x.astype(f32), {"long_name": n, "units": un})
        for k, (x, n, un) in surface.items()
    }
    data["t"] = (
        ("time", "level", "latitude", "longitude"),
        np.stack([t850, t500], axis=1).astype(f32),
        {"long_name": "Temperature", "units": "K"},
    )
    data["z"] = (
        ("time", "pressure_level", "latitude", "longitude"),
        z500[:, None].astype(f32),
        {"long_name": "Geopotential", "units": "m**2 s**-2"},
    )
    ds = xr.Dataset(
        data,
        coords={
            "time": times,
            "level": ("level", np.array([850, 500]), {"units": "hPa"}),
            "pressure_level": ("pressure_level", np.array([500]), {"units": "hPa"}),
            "latitude": lat,
            "longitude": lon,
        },
        attrs={"source": SYNTHETIC_LABEL, "title": SYNTHETIC_LABEL, "Conventions": "CF-1.8"},
    )
    return ds


def write_global_files(
    directory: str | Path,
    *,
    start: str = "2021-01-01",
    days: int = 365,
    resolution: float = 1.5,
    seed: int = 0,
) -> list[Path]:
    """Write ``days`` day files into ``directory`` (kept when present: idempotent)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in pd.date_range(start, periods=days, freq="D"):
        path = directory / f"era5-synthetic-global_{day:%Y%m%d}.nc"
        if not path.exists():
            tmp = path.with_suffix(".nc.tmp")
            global_day(day, resolution=resolution, seed=seed).to_netcdf(tmp, engine="h5netcdf")
            tmp.replace(path)
        paths.append(path)
    log.info("synthetic global atmosphere: %d day files in %s", len(paths), directory)
    return paths
