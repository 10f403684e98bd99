"""The CDS's NetCDF layouts (``valid_time``, ``expver``) and the ERA5 single-level variables
beside skin temperature."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from wxmodels.config.data import DataConfig
from wxmodels.data.canonical import normalise_time_axis, to_canonical
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store
from wxmodels.errors import IngestError
from wxmodels.schema import VARIABLES


def _cds_new(times, value=300.0, expver="0001"):
    """As the CDS writes ERA5 today (cfgrib): ``valid_time``, a string ``expver`` along it, a
    scalar ``number``, latitude descending."""
    shape = (len(times), 3, 4)
    return xr.Dataset(
        {
            "skt": (
                ("valid_time", "latitude", "longitude"),
                np.full(shape, value, np.float32),
                {"units": "K", "long_name": "Skin temperature", "standard_name": "unknown"},
            )
        },
        coords={
            "valid_time": times,
            "expver": ("valid_time", np.array([expver] * len(times))),
            "latitude": [24.5, 24.25, 24.0],
            "longitude": [89.5, 89.75, 90.0, 90.25],
            "number": 0,
        },
    )


def test_valid_time_becomes_time_and_skt_is_skin_temperature():
    times = pd.date_range("2024-01-01", periods=5, freq="h")
    ds = to_canonical(normalise_time_axis(_cds_new(times)))
    assert list(ds.data_vars) == ["skin_temperature"]
    assert ds["skin_temperature"].dims == ("time", "lat", "lon")
    assert (ds["time"].values == times.values).all()
    assert "expver" not in ds.coords and "number" not in ds.coords
    assert ds.lat.values.tolist() == [24.0, 24.25, 24.5]


def test_old_expver_dimension_prefers_final_data():
    """The older layout: ERA5 (0001) and ERA5T (0005) side by side, each step in one of them;
    the final value wins where both exist."""
    times = pd.date_range("2024-01-01", periods=4, freq="h")
    final = np.array([300.0, 301.0, np.nan, np.nan])
    prelim = np.array([np.nan, 311.0, 312.0, 313.0])
    data = np.stack([final, prelim])[:, :, None, None] * np.ones((1, 1, 2, 2))
    ds = xr.Dataset(
        {"t2m": (("expver", "time", "latitude", "longitude"), data.astype(np.float32))},
        coords={
            "expver": ["0001", "0005"],
            "time": times,
            "latitude": [1.0, 0.0],
            "longitude": [0.0, 1.0],
        },
    )
    ds["t2m"].attrs["units"] = "K"
    out = normalise_time_axis(ds)
    assert "expver" not in out.dims
    assert out["t2m"].values[:, 0, 0].tolist() == [300.0, 301.0, 312.0, 313.0]


def test_single_level_variables_a_user_expects():
    for name in (
        "skin_temperature",
        "sea_surface_temperature",
        "total_column_water_vapour",
        "100m_u_component_of_wind",
        "100m_v_component_of_wind",
        "low_cloud_cover",
        "boundary_layer_height",
    ):
        v = VARIABLES[name]
        assert v.valid_min < v.valid_max and v.units
    assert VARIABLES["skin_temperature"].units == "K"


def test_cds_files_ingest_as_they_are(tmp_path):
    """Two yearly files of the new layout, the second arriving later: one store, no gap, the
    `expver` coordinate gone, an out-of-range value refused as for any variable."""
    a = tmp_path / "2023.nc"
    b = tmp_path / "2024.nc"
    _cds_new(pd.date_range("2023-12-31T20:00", periods=4, freq="h")).to_netcdf(a)
    cfg = DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": [str(tmp_path / "*.nc")]},
            "store": str(tmp_path / "s.zarr"),
            "variables": ["skin_temperature"],
            "time_chunk": 24,
        }
    )
    assert ingest(cfg).appended == 4
    _cds_new(pd.date_range("2024-01-01", periods=3, freq="h"), value=301.0).to_netcdf(b)
    assert ingest(cfg).appended == 3
    ds = Store(cfg.store).open()
    assert ds.sizes["time"] == 7 and list(ds.data_vars) == ["skin_temperature"]
    assert ds["skin_temperature"].attrs["units"] == "K"
    np.testing.assert_allclose(ds["skin_temperature"].values[-1], 301.0)


def test_an_implausible_skin_temperature_is_refused(tmp_path):
    _cds_new(pd.date_range("2024-01-01", periods=3, freq="h"), value=400.0).to_netcdf(
        tmp_path / "hot.nc"
    )
    cfg = DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": [str(tmp_path / "*.nc")]},
            "store": str(tmp_path / "s.zarr"),
            "variables": ["skin_temperature"],
        }
    )
    with pytest.raises(IngestError, match=r"hot.nc: skin_temperature ranges 400..400 K"):
        ingest(cfg)
    assert not Store(cfg.store).exists() or Store(cfg.store).open().sizes.get("time", 0) == 0
