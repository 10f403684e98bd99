"""A SYNTHETIC atmosphere in the ERA5 schema, for demos and tests on machines without data.

The fields are not real weather. They are built to have the structure a forecaster must learn:

* **synoptic variability**: a westerly mean flow plus travelling Rossby-like waves whose amplitudes
  drift over days; winds are geostrophic from the streamfunction, pressure is ``rho * f * psi``;
* **advection**: temperature and moisture anomalies are carried by that wind (semi-Lagrangian) and
  relax towards zero; the meridional wind also advects the background temperature gradient;
* **diurnal cycle**: solar radiation from the solar zenith angle attenuated by cloud; the 2 m
  temperature has a diurnal wave, larger over land and damped by cloud;
* **cloud and precipitation** from the moisture anomaly and low pressure.

Files use ERA5 short names and units (``t2m`` K, ``u10``/``v10`` m s**-1, ``msl`` Pa, ``tcc``
(0 - 1), ``tp`` m and ``ssrd`` J m**-2 accumulated over the hour), one NetCDF file per day, and
carry ``source = "wxcompress synthetic atmosphere (NOT real data)"``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import gaussian_filter, map_coordinates

__all__ = ["SYNTHETIC_LABEL", "synthetic_era5", "write_synthetic_files"]

log = logging.getLogger(__name__)

SYNTHETIC_LABEL = "wxcompress synthetic atmosphere (NOT real data)"
_R_EARTH = 6.371e6
_OMEGA = 7.292e-5
_RHO = 1.2


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    # unit variance in expectation (2-D Gaussian-filtered white noise has std
    # 1 / (2 sqrt(pi) sigma)); normalising by the sample std would blow up tiny grids
    f = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return f * 2.0 * np.sqrt(np.pi) * sigma


def synthetic_era5(
    *,
    start: str = "2024-01-01",
    days: int = 21,
    nlat: int = 16,
    nlon: int = 24,
    lat0: float = 42.0,
    lon0: float = -12.0,
    resolution: float = 1.0,
    seed: int = 0,
) -> xr.Dataset:
    """Return an hourly synthetic dataset with ERA5 short names, shape ``(time, lat, lon)``.

    Latitudes are descending, as in ERA5 files, so that ingest has something to normalise.
    """
    rng = np.random.default_rng(seed)
    lat = lat0 + resolution * np.arange(nlat)
    lon = lon0 + resolution * np.arange(nlon)
    times = pd.date_range(start, periods=24 * days, freq="h")
    LAT, LON = np.meshgrid(lat, lon, indexing="ij")
    phi = np.deg2rad(LAT)
    f = 2 * _OMEGA * np.sin(phi)
    dx = _R_EARTH * np.cos(phi) * np.deg2rad(resolution)  # (nlat, nlon) metres per cell
    dy = _R_EARTH * np.deg2rad(resolution)
    x = _R_EARTH * np.cos(np.deg2rad(lat.mean())) * np.deg2rad(LON - lon0)
    y = _R_EARTH * np.deg2rad(LAT - lat0)

    land = gaussian_filter(rng.standard_normal((nlat, nlon)), 3.0, mode="nearest")
    land = (land > np.quantile(land, 0.55)).astype(np.float32)  # ~45 % land
    t_background = 281.0 - 0.7 * (LAT - 50.0)
    dtdy = -0.7 / dy  # K per metre

    n_waves = 4
    wavelengths = rng.uniform(2.0e6, 5.0e6, n_waves)
    k = 2 * np.pi / wavelengths
    ly = 2 * np.pi / rng.uniform(2.5e6, 4.0e6, n_waves)
    speed = rng.uniform(6.0, 14.0, n_waves)  # eastward phase speed, m/s
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    amp_mean = rng.uniform(0.25e7, 0.5e7, n_waves)  # m2 s-1: wave winds ~5-12 m/s
    u_mean = 9.0

    t_anom = 2.0 * _smooth_noise(rng, (nlat, nlon), 2.5)
    q_anom = _smooth_noise(rng, (nlat, nlon), 2.0)
    jj, ii = np.meshgrid(np.arange(nlat), np.arange(nlon), indexing="ij")
    dt = 3600.0
    out = {
        k_: np.empty((len(times), nlat, nlon), np.float32)
        for k_ in ("t2m", "u10", "v10", "msl", "tcc", "tp", "ssrd")
    }
    amp = amp_mean.copy()
    for n, t in enumerate(times):
        hours = n * 1.0
        # amplitudes follow a slow AR(1) process: synoptic systems grow and decay over days
        amp = amp_mean + 0.97 * (amp - amp_mean) + 0.25 * amp_mean * rng.standard_normal(n_waves)
        psi = np.zeros_like(x)
        dpsi_dx = np.zeros_like(x)
        dpsi_dy = np.zeros_like(x)
        for w in range(n_waves):
            arg = k[w] * (x - speed[w] * hours * 3600.0) + phase[w]
            sy, cy = np.sin(ly[w] * y + w), np.cos(ly[w] * y + w)
            psi += amp[w] * np.sin(arg) * sy
            dpsi_dx += amp[w] * k[w] * np.cos(arg) * sy
            dpsi_dy += amp[w] * ly[w] * np.sin(arg) * cy
        u = u_mean - dpsi_dy  # geostrophic wind from the streamfunction
        v = dpsi_dx
        # semi-Lagrangian advection of the anomalies (departure points in grid units)
        dep_i = ii - u * dt / dx
        dep_j = jj - v * dt / dy
        t_anom = map_coordinates(t_anom, [dep_j, dep_i], order=1, mode="nearest")
        q_anom = map_coordinates(q_anom, [dep_j, dep_i], order=1, mode="nearest")
        t_anom += -v * dtdy * dt * 0.5 - t_anom * dt / (4 * 86400.0)
        q_anom += 0.08 * _smooth_noise(rng, (nlat, nlon), 2.0) - q_anom * dt / (2 * 86400.0)
        p_anom = _RHO * f * psi  # geostrophic balance, Pa
        cloud = 1.0 / (1.0 + np.exp(-(1.6 * q_anom - 1.2 * p_anom / 800.0 - 0.3)))
        precip_mm = np.maximum(0.0, cloud - 0.72) * 6.0 * np.exp(0.4 * q_anom)
        # solar geometry (UTC time, local hour angle from longitude)
        doy = t.day_of_year
        decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
        hour_angle = np.deg2rad(15.0 * (t.hour + 0.5 + LON / 15.0 - 12.0))
        cosz = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
        ssrd = 1361.0 * 0.75 * np.maximum(cosz, 0.0) * (1.0 - 0.75 * cloud**3)
        local_hour = (t.hour + LON / 15.0) % 24.0
        diurnal = (1.0 + 2.5 * land) * np.cos(2 * np.pi * (local_hour - 15.0) / 24.0)
        t2m = t_background + t_anom + diurnal * (1.0 - 0.5 * cloud) - 2.0 * land * 0.5
        out["t2m"][n] = t2m
        out["u10"][n] = 0.6 * u * (1.0 - 0.3 * land)
        out["v10"][n] = 0.6 * v * (1.0 - 0.3 * land)
        out["msl"][n] = 101325.0 + p_anom
        out["tcc"][n] = cloud
        out["tp"][n] = precip_mm / 1000.0  # m accumulated over the hour
        out["ssrd"][n] = ssrd * dt  # J m-2 accumulated over the hour

    attrs = {
        "t2m": ("2 metre temperature", "K"),
        "u10": ("10 metre U wind component", "m s**-1"),
        "v10": ("10 metre V wind component", "m s**-1"),
        "msl": ("Mean sea level pressure", "Pa"),
        "tcc": ("Total cloud cover", "(0 - 1)"),
        "tp": ("Total precipitation", "m"),
        "ssrd": ("Surface short-wave (solar) radiation downwards", "J m**-2"),
    }
    ds = xr.Dataset(
        {
            k_: (
                ("time", "latitude", "longitude"),
                v,
                {"long_name": attrs[k_][0], "units": attrs[k_][1]},
            )
            for k_, v in out.items()
        },
        coords={"time": times, "latitude": lat, "longitude": lon},
        attrs={"source": SYNTHETIC_LABEL, "title": SYNTHETIC_LABEL, "Conventions": "CF-1.8"},
    )
    return ds.isel(latitude=slice(None, None, -1))


def write_synthetic_files(directory: str | Path, **kwargs) -> list[Path]:
    """Write :func:`synthetic_era5` as one NetCDF file per day into ``directory``.

    Existing files are kept (the generator is deterministic for a seed), so this is idempotent.
    Returns the paths of all the day files, sorted.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ds = synthetic_era5(**kwargs)
    paths = []
    for day, part in ds.groupby(ds.time.dt.floor("D")):
        path = directory / f"era5-synthetic_{pd.Timestamp(day):%Y%m%d}.nc"
        if not path.exists():
            tmp = path.with_suffix(".nc.tmp")
            part.to_netcdf(tmp, engine="h5netcdf")
            tmp.replace(path)
        paths.append(path)
    log.info("synthetic atmosphere: %d day files in %s", len(paths), directory)
    return sorted(paths)
