"""Regridding inputs on different grids to a declared target grid (xarray-regrid): analytic
fields, the area integral, and an ingest of a Gaussian-grid file beside a regular-grid one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pydantic import ValidationError

from wxmodels.config.data import DataConfig, TargetGridConfig
from wxmodels.data.ingest import ingest
from wxmodels.data.regrid import default_method, regrid_raw, target_grid
from wxmodels.data.store import Store
from wxmodels.errors import DataError

TIMES = pd.date_range("2020-01-01", periods=4, freq="6h")
# a T62-like Gaussian latitude band (irregular spacing) and a 1.875 degree longitude
GAUSS_LAT = np.array([61.9, 60.0, 58.1, 56.2, 54.3, 52.4, 50.5, 48.6, 46.7, 44.8, 42.9])
GAUSS_LON = np.arange(0.0, 30.0, 1.875)


def _field(name, lat, lon, values, units, **attrs) -> xr.Dataset:
    return xr.Dataset(
        {name: (("time", "latitude", "longitude"), values.astype("f4"), {"units": units, **attrs})},
        coords={"time": TIMES, "latitude": lat, "longitude": lon},
    )


def test_a_constant_stays_constant_on_either_method():
    tgt = target_grid(TargetGridConfig(resolution=2.5, lat_bounds=(45, 60), lon_bounds=(2.5, 25)))
    shape = (len(TIMES), len(GAUSS_LAT), len(GAUSS_LON))
    raw = xr.merge(
        [
            _field("t2m", GAUSS_LAT, GAUSS_LON, np.full(shape, 280.0), "K"),
            _field("tp", GAUSS_LAT, GAUSS_LON, np.full(shape, 0.002), "m"),
        ]
    )
    out, info = regrid_raw(
        raw, "latitude", "longitude", tgt, {"t2m": "linear", "tp": "conservative"}
    )
    assert out.sizes == {"time": 4, "lat": 7, "lon": 10}
    np.testing.assert_allclose(out["t2m"], 280.0, rtol=1e-6)
    np.testing.assert_allclose(out["tp"], 0.002, rtol=1e-5)
    assert info["regridded"] == {"t2m": "linear", "tp": "conservative"}
    assert info["grid"].startswith("11x16 lat 42.9..61.9")


def test_conservative_remap_keeps_the_area_integral():
    rng = np.random.default_rng(0)
    lat, lon = np.arange(-29.5, 30, 1.0), np.arange(0.5, 60, 1.0)  # 1 degree cells
    x = rng.gamma(0.5, 2.0, (len(TIMES), len(lat), len(lon)))
    raw = _field("tp", lat, lon, x, "m")
    # 3 degree cells whose edges fall on the source's
    tgt = target_grid(
        TargetGridConfig(resolution=3.0, lat_bounds=(-28.5, 28.5), lon_bounds=(1.5, 58.5))
    )
    out, _ = regrid_raw(raw, "latitude", "longitude", tgt, {"tp": "conservative"})

    def integral(field: np.ndarray, lats: np.ndarray, d: float) -> np.ndarray:
        area = np.sin(np.deg2rad(lats + d / 2)) - np.sin(np.deg2rad(lats - d / 2))
        return (field * area[None, :, None]).sum(axis=(1, 2)) * d

    np.testing.assert_allclose(
        integral(out["tp"].values, tgt["lat"].values, 3.0), integral(x, lat, 1.0), rtol=1e-4
    )


def test_default_methods():
    assert default_method("total_precipitation_rate") == "conservative"
    assert default_method("surface_solar_radiation_downwards") == "conservative"
    assert default_method("2m_temperature") == "linear"
    assert default_method("mean_sea_level_pressure") == "linear"
    with pytest.raises(ValidationError, match="needs `resolution`"):
        TargetGridConfig(kind="regular")
    with pytest.raises(ValidationError, match="unknown canonical"):
        TargetGridConfig(resolution=1.0, methods={"t2m": "linear"})


def _mixed_files(tmp_path):
    """Temperature on a Gaussian grid, precipitation on a regular 2.5 degree grid."""
    d = tmp_path / "in"
    d.mkdir()
    shape = (len(TIMES), len(GAUSS_LAT), len(GAUSS_LON))
    y = np.linspace(0, 1, len(GAUSS_LAT))[None, :, None]
    _field("t2m", GAUSS_LAT, GAUSS_LON, 270.0 + 10 * y + np.zeros(shape), "K").to_netcdf(
        d / "t2m.gauss.nc"
    )
    lat, lon = np.arange(62.5, 40, -2.5), np.arange(0.0, 30, 2.5)
    tp = np.full((len(TIMES), len(lat), len(lon)), 0.001)
    _field("tp", lat, lon, tp, "m").to_netcdf(d / "tp.regular.nc")
    return d


def _cfg(tmp_path, d, grid):
    return DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": [str(d / "*.nc")], "accumulation_hours": 6},
            "store": str(tmp_path / "store.zarr"),
            "variables": ["2m_temperature", "total_precipitation_rate"],
            **({"grid": grid} if grid else {}),
        }
    )


def test_mixed_grids_are_regridded_into_one_store(tmp_path):
    d = _mixed_files(tmp_path)
    grid = {"kind": "regular", "resolution": 2.5, "lat_bounds": [45, 60], "lon_bounds": [2.5, 25]}
    rep = ingest(_cfg(tmp_path, d, grid))
    assert rep.appended == 4 and not rep.problems
    # the summary says, per file, what it gave, from which grid, how it was regridded
    files = {k.rsplit("/", 1)[-1]: v for k, v in rep.files.items()}
    assert files["t2m.gauss.nc"]["canonical"] == ["2m_temperature"]
    assert files["tp.regular.nc"]["regridded"] == {"tp": "conservative"}
    ds = Store(str(tmp_path / "store.zarr")).open()
    assert ds["lat"].values.tolist() == list(np.arange(45.0, 60.1, 2.5))
    assert ds["lon"].values.tolist() == list(np.arange(2.5, 25.1, 2.5))
    np.testing.assert_allclose(ds["total_precipitation_rate"], 1.0 / 6, rtol=1e-5)  # m / 6 h
    t = ds["2m_temperature"].isel(time=0, lon=0).values
    assert np.all(np.diff(t) < 0)  # warmer to the north, as the input (interpolated, not filled)
    inputs = Store(str(tmp_path / "store.zarr")).read_commit().inputs
    t2m = next(v for k, v in inputs.items() if k.endswith("t2m.gauss.nc"))
    assert t2m["regridded"] == {"t2m": "linear"} and t2m["grid"].startswith("11x16")
    tp = next(v for k, v in inputs.items() if k.endswith("tp.regular.nc"))
    assert tp["regridded"] == {"tp": "conservative"}


def test_without_a_target_grid_the_odd_file_is_left_out_with_the_way_out(tmp_path):
    d = _mixed_files(tmp_path)
    with pytest.raises(DataError, match=r"left out: .*declare a target grid"):
        ingest(_cfg(tmp_path, d, None))


def test_850hpa_temperature_without_a_vertical_coordinate_never_becomes_2m(tmp_path):
    """The 2 m temperature file is on another grid (left out without data.grid); the 850 hPa
    temperature file beside it names its level only in its long name. Its `air` must not stand
    in for 2m_temperature: it is left out as ambiguous, and the run says why."""
    d = tmp_path / "in"
    d.mkdir()
    shape = (len(TIMES), len(GAUSS_LAT), len(GAUSS_LON))
    t2m = _field(
        "air", GAUSS_LAT, GAUSS_LON, np.full(shape, 280.0), "K", standard_name="air_temperature"
    )
    t2m["air"] = t2m["air"].expand_dims(height=[2.0]).squeeze("height")  # a CF height coordinate
    t2m.to_netcdf(d / "air.2m.gauss.nc")
    lat, lon = np.arange(62.5, 40, -2.5), np.arange(0.0, 30, 2.5)
    t850 = _field(
        "air",
        lat,
        lon,
        np.full((len(TIMES), len(lat), len(lon)), 265.0),
        "K",
        standard_name="air_temperature",
        long_name="air temperature at 850 hPa",
    )
    t850.to_netcdf(d / "air.850.nc")
    cfg = DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": [str(d / "*.nc")]},
            "store": str(tmp_path / "store.zarr"),
            "variables": ["2m_temperature"],
        }
    )
    rep = ingest(cfg)  # the 2 m file alone is the store; the 850 hPa one is left out
    assert not Store(cfg.store).open()["2m_temperature"].isin([265.0]).any()
    why = {p["path"].rsplit("/", 1)[-1]: p["reason"] for p in rep.problems}
    assert "without a height or pressure coordinate is ambiguous" in why["air.850.nc"]
    np.testing.assert_allclose(Store(cfg.store).open()["2m_temperature"], 280.0)


def test_two_inputs_offering_one_variable_for_the_same_times(tmp_path):
    """Refused unless configured: the later input (by name) is left out with the reason; with
    `overlap: merge` agreeing copies combine."""
    d = tmp_path / "in"
    d.mkdir()
    lat, lon = np.arange(62.5, 40, -2.5), np.arange(0.0, 30, 2.5)
    x = np.full((len(TIMES), len(lat), len(lon)), 275.0)
    _field("t2m", lat, lon, x, "K").to_netcdf(d / "a.nc")
    _field("t2m", lat, lon, x, "K").to_netcdf(d / "b.nc")

    def cfg(**src):
        return DataConfig.model_validate(
            {
                "source": {"kind": "files", "paths": [str(d / "*.nc")], **src},
                "store": str(tmp_path / f"{len(src)}.zarr"),
                "variables": ["2m_temperature"],
            }
        )

    rep = ingest(cfg())
    assert rep.appended == 4 and [p["path"].rsplit("/", 1)[-1] for p in rep.problems] == ["b.nc"]
    assert "offers 2m_temperature for times a.nc already offers" in rep.problems[0]["reason"]
    rep = ingest(cfg(overlap="merge"))
    assert rep.appended == 4 and not rep.problems
