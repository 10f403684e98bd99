"""The replay's as-of archive: what a tick is offered, preliminary then final deliveries, and
a revision reaching the store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.factories import make_fields
from wxmodels.config.data import DataConfig
from wxmodels.config.replay import ReplayConfig, RevisionScenario, parse_period
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store
from wxmodels.data.synthetic import write_synthetic_files
from wxmodels.errors import DataError
from wxmodels.replay.archive import Archive, as_of, served

DAY = parse_period("1D")


@pytest.fixture
def days(tmp_path):
    """Six hourly day files of the synthetic atmosphere (2024-01-01 .. 06)."""
    files = write_synthetic_files(tmp_path / "src", start="2024-01-01", days=6, nlat=4, nlon=6)
    return [str(p) for p in files]


def _landing_times(landing, dim: str = "time") -> dict[str, pd.DatetimeIndex]:
    out = {}
    for p in sorted(landing.glob("*.nc")):
        with xr.open_dataset(p) as ds:
            out[p.name] = pd.DatetimeIndex(ds[dim].values)
    return out


def test_a_tick_is_offered_only_what_was_valid_before_it(days, tmp_path):
    landing = tmp_path / "r" / "landing"
    a = Archive(days, landing, pd.Timestamp("2024-01-03"), DAY)
    for tick in pd.date_range("2024-01-03", "2024-01-06 12:00", freq="12h"):
        d = a.deliver(tick)
        for name, t in _landing_times(landing).items():
            assert t.max() < tick, (name, tick)
        if d.last is not None:
            assert pd.Timestamp(d.last) < tick
    log = served(landing)
    assert all(pd.Timestamp(e["last"]) < pd.Timestamp(e["tick"]) for e in log)
    # the backfill at the first tick, then one day file per day that has ended
    assert [e["tick"][:10] for e in log] == ["2024-01-03"] * 2 + [
        "2024-01-04",
        "2024-01-05",
        "2024-01-06",
    ]
    assert {e["steps"] for e in log} == {24}
    # nothing more to deliver at the same tick: idempotent
    assert a.deliver(pd.Timestamp("2024-01-06 12:00")).files == []


def test_long_files_are_split_into_period_files(tmp_path):
    t = pd.date_range("2015-01-01", "2015-12-31 23:00", freq="h")
    ds = xr.Dataset(
        {"skt": (("valid_time", "latitude", "longitude"), np.zeros((len(t), 2, 3), "f4"))},
        coords={"valid_time": t, "latitude": [1.0, 0.0], "longitude": [0.0, 1.0, 2.0]},
    )
    src = tmp_path / "skt_2015.nc"
    ds.to_netcdf(src)
    landing = tmp_path / "r" / "landing"
    a = Archive([str(src)], landing, pd.Timestamp("2015-07-01"), parse_period("1M"))
    d = a.deliver(pd.Timestamp("2015-07-01"))
    assert len(d.files) == 6 and d.steps == 181 * 24
    times = _landing_times(landing, "valid_time")
    assert sorted(times) == [f"skt_2015.2015{m:02d}01T0000.nc" for m in range(1, 7)]
    assert times["skt_2015.20150201T0000.nc"].equals(
        pd.date_range("2015-02-01", "2015-02-28 23:00", freq="h")
    )
    assert len(a.deliver(pd.Timestamp("2015-08-15")).files) == 1  # July only: August is open


def test_file_without_dates_is_a_clear_error(tmp_path):
    src = tmp_path / "steps.nc"
    xr.Dataset({"x": (("step",), np.arange(3.0))}).to_netcdf(src)
    a = Archive([str(src)], tmp_path / "r" / "landing", pd.Timestamp("2024-01-01"), DAY)
    with pytest.raises(DataError, match="no time dimension with dates"):
        a.deliver(pd.Timestamp("2024-01-02"))


def test_as_of_cuts_fields_before_the_time():
    f = make_fields(nt=48)
    cut = as_of(f, f.times[10])
    assert len(cut.hours) == 10 and cut.times[-1] < f.times[10]
    assert np.array_equal(cut.data, f.data[:10], equal_nan=True)
    with pytest.raises(DataError, match="nothing before"):
        as_of(f, f.times[0])


def test_replay_ticks_and_retrain_cadence():
    rp = ReplayConfig(start="2016-01-01", end="2025-01-01")
    assert len(rp.ticks()) == 109 and rp.ticks()[-1] == pd.Timestamp("2025-01-01")
    assert rp.retrain_ticks() == list(range(0, 108, 12))  # never at the last tick
    with pytest.raises(ValueError, match="not a period"):
        ReplayConfig(start="2016-01-01", end="2017-01-01", ingest_every="monthly")
    with pytest.raises(ValueError, match="end must come after start"):
        ReplayConfig(start="2016-01-01", end="2015-01-01")


def test_preliminary_data_is_revised_in_the_store_by_the_final(days, tmp_path):
    """A period arrives first perturbed, one tick later final under the same name: the ingest
    sees a changed file whose steps are committed and the store rewrites them."""
    landing = tmp_path / "r" / "landing"
    a = Archive(days, landing, pd.Timestamp("2024-01-03"), DAY, RevisionScenario(lag=1, noise=0.5))
    cfg = DataConfig.model_validate(
        {
            "source": {"kind": "landing", "directory": str(landing), "accumulation_hours": 1.0},
            "store": str(tmp_path / "store.zarr"),
            "variables": ["2m_temperature", "10m_u_component_of_wind"],
        }
    )
    store = Store(cfg.store)
    d = a.deliver(pd.Timestamp("2024-01-03"))
    assert d.files == ["era5-synthetic_20240101.20240101T0000.nc"]
    assert d.preliminary == ["era5-synthetic_20240102.20240102T0000.nc"]
    rep = ingest(cfg)
    assert rep.appended == 48 and not rep.revised
    with xr.open_dataset(days[1]) as src:
        final = src["t2m"].sortby("latitude").values  # the store holds latitudes ascending
    prelim = store.open()["2m_temperature"].sel(time="2024-01-02").values
    assert not np.allclose(prelim, final)
    with xr.open_dataset(landing / d.preliminary[0]) as p:  # within the period's range
        assert p["t2m"].min() >= final.min() and p["t2m"].max() <= final.max()
    version = store.version()
    d = a.deliver(pd.Timestamp("2024-01-04"))
    assert d.files == ["era5-synthetic_20240102.20240102T0000.nc"]
    rep = ingest(cfg)
    assert len(rep.revised) == 24 and rep.appended == 24
    np.testing.assert_allclose(
        store.open()["2m_temperature"].sel(time="2024-01-02").values, final, rtol=1e-6
    )
    assert store.version() != version
    log = [e["kind"] for e in served(landing) if e["file"].endswith("20240102T0000.nc")]
    assert log == ["preliminary", "final"]
    state = json.loads((tmp_path / "r" / "deliveries.json").read_text())
    assert state["era5-synthetic_20240102.20240102T0000.nc"] == "final"
