"""Mapping sources onto the canonical schema."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from wxmodels.data.canonical import convert_units, normalise_units, to_canonical
from wxmodels.errors import DataError


def _era5(**kw):
    times = pd.date_range("2020-01-01", periods=3, freq="h")
    lat = np.array([60.0, 59.0, 58.0])  # descending, as in ERA5
    lon = np.array([0.0, 90.0, 180.0, 270.0])
    shape = (3, 3, 4)
    ds = xr.Dataset(
        {
            "t2m": (
                ("time", "latitude", "longitude"),
                np.full(shape, 273.15, np.float32),
                {"units": "K"},
            ),
            "tp": (
                ("time", "latitude", "longitude"),
                np.full(shape, 0.002, np.float32),
                {"units": "m"},
            ),
            "ssrd": (
                ("time", "latitude", "longitude"),
                np.full(shape, 360000.0, np.float32),
                {"units": "J m**-2"},
            ),
            "junk": (
                ("time", "latitude", "longitude"),
                np.zeros(shape, np.float32),
                {"units": "1"},
            ),
        },
        coords={"time": times, "latitude": lat, "longitude": lon},
    )
    return ds


def test_era5_names_units_and_grid():
    ds = to_canonical(_era5(), accumulation_hours=1.0)
    assert set(ds.data_vars) == {
        "2m_temperature",
        "total_precipitation_rate",
        "surface_solar_radiation_downwards",
    }
    assert ds["2m_temperature"].dims == ("time", "lat", "lon")
    assert np.all(np.diff(ds.lat.values) > 0)
    assert ds.lon.values.tolist() == [-180.0, -90.0, 0.0, 90.0]
    np.testing.assert_allclose(ds["total_precipitation_rate"], 2.0)  # m/h -> mm/h
    np.testing.assert_allclose(ds["surface_solar_radiation_downwards"], 100.0)  # J/m2/h -> W/m2
    assert ds["total_precipitation_rate"].attrs["units"] == "mm h-1"
    assert ds["2m_temperature"].attrs["source_name"] == "t2m"


def test_accumulations_need_their_period():
    with pytest.raises(DataError, match="accumulation"):
        to_canonical(_era5())


def test_missing_variable_is_named():
    with pytest.raises(DataError, match="10m_wind_speed"):
        to_canonical(_era5(), accumulation_hours=1, variables=["10m_wind_speed"])


def test_units_override_and_degc():
    ds = _era5()
    ds["t2m"].attrs["units"] = "degC"
    ds["t2m"] = ds["t2m"] - 273.15
    out = to_canonical(ds, accumulation_hours=1)
    np.testing.assert_allclose(out["2m_temperature"], 273.15, rtol=1e-6)
    ds["t2m"].attrs.pop("units")
    with pytest.raises(DataError, match="no units"):
        to_canonical(ds, accumulation_hours=1)
    out = to_canonical(ds, accumulation_hours=1, units={"t2m": "degC"})
    np.testing.assert_allclose(out["2m_temperature"], 273.15, rtol=1e-6)


@pytest.mark.parametrize(
    ("src", "dst", "x", "y"),
    [
        ("kg m**-2 s**-1", "mm h-1", 1e-3, 3.6),
        ("K", "degC", 273.15, 0.0),
        ("hPa", "Pa", 1013.0, 101300.0),
        ("%", "1", 50.0, 0.5),
    ],
)
def test_convert_units(src, dst, x, y):
    out = convert_units(xr.DataArray([x]), src, dst)
    np.testing.assert_allclose(out.values, [y], rtol=1e-6, atol=1e-9)


def test_unknown_conversion_is_refused():
    with pytest.raises(DataError, match="cannot convert"):
        convert_units(xr.DataArray([1.0]), "furlong", "K")
    assert normalise_units("m s**-1") == "m s-1"


def test_levels_and_members_flattened():
    times = pd.date_range("2020-01-01", periods=2, freq="12h")
    ds = xr.Dataset(
        {
            "t": (
                ("number", "time", "isobaricInhPa", "latitude", "longitude"),
                np.stack([np.full((2, 2, 3, 4), 250.0), np.full((2, 2, 3, 4), 260.0)]),
                {"units": "K"},
            )
        },
        coords={
            "number": [0, 1],
            "time": times,
            "isobaricInhPa": [850.0, 500.0],
            "latitude": [10.0, 0.0, -10.0],
            "longitude": [0.0, 1.0, 2.0, 3.0],
        },
    )
    out = to_canonical(ds)
    assert set(out.data_vars) == {"temperature_850hPa", "temperature_500hPa"}
    np.testing.assert_allclose(out["temperature_850hPa"], 255.0)
    one = to_canonical(ds, member=1)
    np.testing.assert_allclose(one["temperature_500hPa"], 260.0)


def _cf(name: str, std: str, units: str = "K", value: float = 250.0, **coords) -> xr.Dataset:
    """One variable known only by its CF standard_name, with optional scalar coordinates."""
    return xr.Dataset(
        {
            name: (
                ("time", "lat", "lon"),
                np.full((2, 3, 4), value, np.float32),
                {"units": units, "standard_name": std},
            )
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=2, freq="D"),
            "lat": [10.0, 20.0, 30.0],
            "lon": [0.0, 2.5, 5.0, 7.5],
            **coords,
        },
    )


def test_air_temperature_without_a_vertical_coordinate_is_ambiguous():
    """850 hPa temperature whose file has no vertical coordinate must not become 2 m
    temperature: the level is established by a coordinate or an explicit mapping."""
    with pytest.raises(DataError, match="without a height or pressure coordinate is ambiguous"):
        to_canonical(_cf("air", "air_temperature"))
    with pytest.raises(DataError, match="on pressure levels"):
        to_canonical(_cf("air", "air_temperature", plev=85000.0))
    with pytest.raises(DataError, match="at height 10 m is not 2m_temperature"):
        to_canonical(_cf("air", "air_temperature", height=10.0))
    out = to_canonical(_cf("air", "air_temperature", height=2.0))
    assert list(out.data_vars) == ["2m_temperature"]
    # an explicit mapping is the user's word
    out = to_canonical(_cf("air", "air_temperature"), rename={"air": "2m_temperature"})
    assert list(out.data_vars) == ["2m_temperature"]
    # standard names that are not tied to a height map as before
    out = to_canonical(_cf("slp", "air_pressure_at_mean_sea_level", "Pa", 101300.0))
    assert list(out.data_vars) == ["mean_sea_level_pressure"]


@pytest.mark.parametrize("units", ["1", "kg kg-1", "kg/kg", "kg kg**-1"])
def test_specific_humidity_in_cf_dimensionless_units(units):
    ds = _cf("sphum", "specific_humidity", units, 0.004, height=2.0)
    out = to_canonical(ds)
    np.testing.assert_allclose(out["2m_specific_humidity"], 0.004, rtol=1e-6)
    out = to_canonical(_cf("sphum", "specific_humidity", "g kg-1", 4.0, height=2.0))
    np.testing.assert_allclose(out["2m_specific_humidity"], 0.004, rtol=1e-6)


@pytest.mark.parametrize("chunked", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("lon0", [0.0, -180.0, 1.5], ids=["0-360", "ascending", "wrapped-mid"])
def test_latitudes_and_longitudes_put_in_order_with_the_values(chunked, lon0):
    """Descending latitudes and a longitude axis that wraps are reordered with their values
    (one copy per chunk), the same as sorting each coordinate; every value stays with its
    own latitude and longitude."""
    lat = np.linspace(60.0, -60.0, 5)
    lon = lon0 + 90.0 * np.arange(4)
    times = pd.date_range("2020-01-01", periods=6, freq="h")
    # each value encodes its own time, latitude and longitude
    values = (
        1000.0 * np.arange(6)[:, None, None] + lat[None, :, None] + lon[None, None, :] / 1000.0
    ).astype(np.float32) + 200.0
    ds = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), values, {"units": "K"})},
        coords={"time": times, "latitude": lat, "longitude": lon},
    )
    if chunked:
        ds = ds.chunk({"time": 4})
    out = to_canonical(ds)
    want = ds.rename(latitude="lat", longitude="lon", t2m="2m_temperature")
    want = want.assign_coords(lon=((want.lon + 180.0) % 360.0) - 180.0).sortby(["lat", "lon"])
    assert out.lat.values.tolist() == want.lat.values.tolist()
    assert out.lon.values.tolist() == want.lon.values.tolist()
    assert (out["2m_temperature"].chunks is not None) == chunked
    np.testing.assert_array_equal(out["2m_temperature"].values, want["2m_temperature"].values)
