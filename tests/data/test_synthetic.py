"""The synthetic atmosphere: ERA5 schema, labelled, deterministic, with a diurnal cycle."""

import numpy as np
import xarray as xr

from wxmodels.data.synthetic import SYNTHETIC_LABEL, synthetic_era5, write_synthetic_files


def test_schema_and_label():
    ds = synthetic_era5(days=3, nlat=6, nlon=8, seed=1)
    assert set(ds.data_vars) == {"t2m", "u10", "v10", "msl", "tcc", "tp", "ssrd"}
    assert ds.t2m.dims == ("time", "latitude", "longitude")
    assert ds.sizes["time"] == 72
    assert "NOT real data" in ds.attrs["source"] == SYNTHETIC_LABEL
    assert ds.latitude.values[0] > ds.latitude.values[-1]  # ERA5 order
    assert float(ds.tcc.min()) >= 0 and float(ds.tcc.max()) <= 1
    assert float(ds.tp.min()) >= 0


def test_deterministic_and_seeded():
    a = synthetic_era5(days=3, nlat=6, nlon=8, seed=1)
    b = synthetic_era5(days=3, nlat=6, nlon=8, seed=1)
    c = synthetic_era5(days=3, nlat=6, nlon=8, seed=2)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.t2m, c.t2m)


def test_diurnal_cycle_and_advection():
    ds = synthetic_era5(days=4, nlat=8, nlon=12, seed=0)
    ssrd = ds.ssrd.mean(("latitude", "longitude")).values.reshape(4, 24)
    assert (ssrd.max(axis=1) > 0).all() and (ssrd.min(axis=1) == 0).all()  # day and night
    # temperature keeps memory from hour to hour (advection), far more than from day to day
    t = ds.t2m.values
    d1 = np.abs(np.diff(t, axis=0)).mean()
    d24 = np.abs(t[24:] - t[:-24]).mean()
    assert d1 < d24


def test_files_written_once(tmp_path):
    paths = write_synthetic_files(tmp_path, days=3, nlat=4, nlon=5)
    assert len(paths) == 3
    mtimes = [p.stat().st_mtime_ns for p in paths]
    again = write_synthetic_files(tmp_path, days=3, nlat=4, nlon=5)
    assert again == paths and [p.stat().st_mtime_ns for p in again] == mtimes
    with xr.open_dataset(paths[0]) as ds:
        assert ds.attrs["source"] == SYNTHETIC_LABEL
