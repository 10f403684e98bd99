"""Sources: landing directory, WeatherBench 2 / ARCO-style Zarr, files without a time coordinate,
per-file renames, subsetting and coarsening, static fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import ingest
from wxmodels.data.regrid import coarsen
from wxmodels.data.sources import make_source
from wxmodels.data.store import Store
from wxmodels.data.synthetic import write_synthetic_files

VARS = ["2m_temperature", "10m_u_component_of_wind", "total_precipitation_rate"]


def _landing_cfg(tmp_path, **kw):
    return DataConfig.model_validate(
        {
            "source": {
                "kind": "landing",
                "directory": str(tmp_path / "landing"),
                "accumulation_hours": 1.0,
                **kw,
            },
            "store": str(tmp_path / "store.zarr"),
            "variables": VARS,
        }
    )


def test_landing_directory_quarantines_and_archives(tmp_path):
    land = tmp_path / "landing"
    files = write_synthetic_files(land, days=3, nlat=4, nlon=5, seed=0)
    files[2].write_bytes(files[2].read_bytes()[:500])  # truncated in transit
    cfg = _landing_cfg(tmp_path, archive=True)
    rep = ingest(cfg)
    assert rep.appended == 48
    q = land / "quarantine"
    assert (q / files[2].name).exists()
    assert (q / f"{files[2].name}.reason.txt").read_text().strip()
    assert sorted(p.name for p in (land / "ingested").iterdir()) == [files[0].name, files[1].name]
    assert list(land.glob("*.nc")) == []
    # the provider sends the file again, complete: it is picked up
    good = write_synthetic_files(tmp_path / "again", days=3, nlat=4, nlon=5, seed=0)[2]
    good.rename(land / good.name)
    assert ingest(cfg).appended == 24


def test_quarantined_file_is_not_read_again_until_it_changes(tmp_path):
    land = tmp_path / "landing"
    files = write_synthetic_files(land, days=2, nlat=4, nlon=5, seed=0)
    data = files[1].read_bytes()
    files[1].write_bytes(b"garbage")
    cfg = DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": [str(land / "*.nc")], "accumulation_hours": 1},
            "store": str(tmp_path / "s.zarr"),
            "variables": VARS,
        }
    )
    r1 = ingest(cfg)
    assert r1.appended == 24 and len(r1.problems) == 1
    r2 = ingest(cfg)
    assert r2.read == 0 and "still quarantined" in r2.problems[0]["reason"]
    assert str(files[1]) in Store(cfg.store).read_commit().quarantine
    files[1].write_bytes(data)
    r3 = ingest(cfg)
    assert (r3.appended, r3.read) == (24, 1)
    assert str(files[1]) not in Store(cfg.store).read_commit().quarantine


def _arco_zarr(path, times) -> None:
    """A local Zarr in the ARCO-ERA5 / WeatherBench 2 layout (0..360 longitudes, descending
    latitudes, pressure levels on `level`, hourly accumulations in metres)."""
    rng = np.random.default_rng(0)
    lat = np.arange(60.0, 39.0, -3.0)
    lon = np.arange(0.0, 360.0, 30.0)
    lev = np.array([500, 850])
    n = len(times)
    ds = xr.Dataset(
        {
            "2m_temperature": (
                ("time", "latitude", "longitude"),
                280 + rng.normal(size=(n, len(lat), len(lon))),
                {"units": "K"},
            ),
            "10m_u_component_of_wind": (
                ("time", "latitude", "longitude"),
                rng.normal(size=(n, len(lat), len(lon))),
                {"units": "m s**-1"},
            ),
            "total_precipitation": (
                ("time", "latitude", "longitude"),
                np.abs(rng.normal(size=(n, len(lat), len(lon)))) * 1e-4,
                {"units": "m"},
            ),
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                250 + rng.normal(size=(n, 2, len(lat), len(lon))),
                {"units": "K"},
            ),
        },
        coords={"time": times, "latitude": lat, "longitude": lon, "level": lev},
    ).astype("float32")
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False)


def test_zarr_source_in_arco_layout_grows_incrementally(tmp_path):
    times = pd.date_range("2021-06-01", periods=48, freq="h")
    url = str(tmp_path / "arco.zarr")
    _arco_zarr(url, times[:30])
    cfg = DataConfig.model_validate(
        {
            "source": {
                "kind": "zarr",
                "url": url,
                "accumulation_hours": 1,
                "grid": {"lat_bounds": [42, 60], "lon_bounds": [-60, 60]},
            },
            "store": str(tmp_path / "s.zarr"),
            "variables": [*VARS, "temperature_850hPa"],
        }
    )
    src = make_source(cfg.source, variables=cfg.variables)
    assert len(src.available_times()) == 30
    assert ingest(cfg).appended == 30
    assert ingest(cfg).read == 0  # unchanged remote: fingerprint matches
    _arco_zarr(url, times)  # the archive grew
    rep = ingest(cfg)
    assert (rep.appended, rep.skipped) == (18, 0)  # only the tail is opened
    ds = Store(cfg.store).open()
    assert ds.lon.values.tolist() == [-60.0, -30.0, 0.0, 30.0, 60.0]
    assert np.all(np.diff(ds.lat.values) > 0) and ds.lat.values.max() <= 60
    assert float(ds["total_precipitation_rate"].max()) < 1.0  # m/h -> mm/h
    assert "temperature_850hPa" in ds


def test_files_without_time_and_per_file_renames(tmp_path):
    """NCL-storm-like files: `timestep` hours from a `reftime`, same variable name in two files."""
    lat, lon = np.arange(20.0, 30.0, 2.0), np.arange(-100.0, -90.0, 2.5)
    for name, var, val in (("Ustorm.cdf", "u", 5.0), ("U500storm.cdf", "u", 20.0)):
        ds = xr.Dataset(
            {
                var: (("timestep", "lat", "lon"), np.full((8, 5, 4), val, np.float32)),
                "reftime": ((), np.array(b"1996 01 05 00:00")),
            },
            coords={"timestep": np.arange(0, 48, 6), "lat": lat, "lon": lon},
        )
        ds.to_netcdf(tmp_path / name)
    cfg = DataConfig.model_validate(
        {
            "source": {
                "kind": "files",
                "paths": [str(tmp_path / "*.cdf")],
                "units": {"u": "m s-1"},
                "time_from_step": {"dim": "timestep"},
                "file_rename": {
                    "Ustorm.cdf": {"u": "10m_u_component_of_wind"},
                    "U500storm.cdf": {"u": "u_component_of_wind_500hPa"},
                },
            },
            "store": str(tmp_path / "s.zarr"),
            "variables": ["10m_u_component_of_wind", "u_component_of_wind_500hPa"],
        }
    )
    assert ingest(cfg).appended == 8
    ds = Store(cfg.store).open()
    assert str(ds.time.values[1])[:16] == "1996-01-05T06:00"
    assert float(ds["u_component_of_wind_500hPa"].mean()) == 20.0
    assert float(ds["10m_u_component_of_wind"].mean()) == 5.0


def test_coarsen_is_area_weighted_and_nan_aware():
    lat = np.array([0.0, 60.0])
    ds = xr.Dataset(
        {"2m_temperature": (("time", "lat", "lon"), np.array([[[10.0, np.nan], [20.0, 20.0]]]))},
        coords={"time": [0], "lat": lat, "lon": [0.0, 1.0]},
    )
    out = coarsen(ds, 2)
    from wxmodels.geometry import lat_weights_np

    w = lat_weights_np(lat)
    expect = (w[0] * 10 + 2 * w[1] * 20) / (w[0] + 2 * w[1])
    assert out["2m_temperature"].values.item() == pytest.approx(expect)


def test_static_field_from_file(tmp_path):
    write_synthetic_files(tmp_path / "landing", days=2, nlat=4, nlon=5, seed=0)
    with xr.open_dataset(sorted((tmp_path / "landing").glob("*.nc"))[0]) as d:
        lat, lon = d.latitude.values, d.longitude.values
    xr.Dataset(
        {"lsm": (("latitude", "longitude"), (np.arange(20).reshape(4, 5) % 2).astype("f4"))},
        coords={"latitude": lat, "longitude": lon},
    ).to_netcdf(tmp_path / "lsm.nc")
    cfg = DataConfig.model_validate(
        {
            "source": {
                "kind": "files",
                "paths": [str(tmp_path / "landing" / "*.nc")],
                "accumulation_hours": 1,
            },
            "store": str(tmp_path / "s.zarr"),
            "variables": VARS,
            "static": {"land_sea_mask": {"path": str(tmp_path / "lsm.nc"), "variable": "lsm"}},
        }
    )
    ingest(cfg)
    st = Store(cfg.store).static()
    assert set(st.data_vars) >= {"valid_mask", "land_sea_mask"}
    assert st["valid_mask"].values.all()
    assert sorted(np.unique(st["land_sea_mask"].values)) == [0.0, 1.0]
