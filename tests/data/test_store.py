"""The store: commits, idempotent appends, gaps, revisions, interrupted writes, statistics.

Every test runs on a local path and (marked ``s3``) on the S3-compatible server."""

import json

import numpy as np
import pytest
import zarr

from tests.factories import canonical_dataset
from wxmodels.data.stats import ClimAccumulator
from wxmodels.data.store import COMMIT_KEY, Store
from wxmodels.errors import DataError, IngestError


def _store(store_url):
    url, so = store_url
    return Store(url, so)


def test_first_write_then_append_then_idempotent(store_url):
    ds = canonical_dataset(nt=48)
    store = _store(store_url)
    r1 = store.append(ds.isel(time=slice(0, 30)), time_chunk=24)
    assert (r1.appended, r1.skipped) == (30, 0)
    r2 = store.append(ds, time_chunk=24)
    assert (r2.appended, r2.skipped) == (18, 30)
    assert r2.version != r1.version
    r3 = store.append(ds, time_chunk=24)
    assert (r3.appended, r3.skipped, r3.revised) == (0, 48, [])
    assert r3.version == r2.version
    out = store.open()
    np.testing.assert_array_equal(out["2m_temperature"].values, ds["2m_temperature"].values)
    assert out.sizes["time"] == 48
    arr = zarr.open_group(store.url, mode="r", storage_options=store.zarr_options)["2m_temperature"]
    assert arr.chunks[0] == 24  # uniform: the partial chunk was filled first
    assert [h["appended"] for h in store.read_commit().history] == [30, 18]
    assert len(store.step_hashes()) == 48


def test_gap_is_reported_and_waits(store_url):
    ds = canonical_dataset(nt=48)
    store = _store(store_url)
    store.append(ds.isel(time=slice(0, 20)))
    v = store.version()
    with pytest.raises(IngestError, match="gap in time"):
        store.append(ds.isel(time=slice(25, 48)))
    assert store.version() == v
    assert store.open().sizes["time"] == 20
    # a batch that continues and then jumps: the contiguous part goes in, the rest waits
    rep = store.append(ds.isel(time=[*range(20, 30), *range(35, 48)]))
    assert rep.appended == 10
    assert "gap after" in rep.gap
    assert store.open().sizes["time"] == 30


def test_changed_values_of_committed_steps_are_a_revision(store_url):
    ds = canonical_dataset(nt=24)
    store = _store(store_url)
    v1 = store.append(ds).version
    ds2 = ds.copy(deep=True)
    ds2["2m_temperature"][3] += 1.0
    ds2["10m_wind_speed"][5] += 0.5
    rep = store.append(ds2)
    assert rep.appended == 0
    assert rep.revised == ["2020-01-01 03:00:00", "2020-01-01 05:00:00"]
    assert rep.skipped == 22
    assert rep.version != v1
    out = store.open()
    np.testing.assert_array_equal(out["2m_temperature"].values, ds2["2m_temperature"].values)
    np.testing.assert_array_equal(out["10m_wind_speed"].values, ds2["10m_wind_speed"].values)
    assert store.read_commit().history[-1]["revised"] == rep.revised
    mean_t = store.statistics().normalisation(["2m_temperature"])["mean"][0]
    assert mean_t == pytest.approx(float(ds2["2m_temperature"].astype("f8").mean()), rel=1e-12)
    assert store.append(ds2).revised == []  # applied once


def test_schema_mismatch(store_url):
    store = _store(store_url)
    store.append(canonical_dataset(nt=10))
    other = canonical_dataset(nt=20, variables=("2m_temperature",))
    with pytest.raises(IngestError, match="variables differ"):
        store.append(other.isel(time=slice(10, 20)))
    units = canonical_dataset(nt=20)
    units["2m_temperature"].attrs["units"] = "degC"
    with pytest.raises(IngestError, match="units differ"):
        store.append(units.isel(time=slice(10, 20)))


def test_bad_values_commit_nothing(store_url):
    store = _store(store_url)
    ds = canonical_dataset(nt=20)
    bad = ds.copy(deep=True)
    bad["2m_temperature"][:] = bad["2m_temperature"] - 273.15
    with pytest.raises(DataError, match="looks like degC"):
        store.append(bad)
    assert not store.exists()
    store.append(ds.isel(time=slice(0, 10)))
    with pytest.raises(DataError, match="looks like degC"):
        store.append(bad.isel(time=slice(10, 20)))
    assert store.open().sizes["time"] == 10
    store.append(ds)  # the debris of the refused write is gone
    np.testing.assert_array_equal(
        store.open()["2m_temperature"].values, ds["2m_temperature"].values
    )


def test_interrupted_append_is_invisible_and_repaired(store_url):
    """A crash after the data write but before the commit: readers see the last commit, and
    the next append removes the debris and appends exactly once."""
    ds = canonical_dataset(nt=48)
    store = _store(store_url)
    store.append(ds.isel(time=slice(0, 24)))
    ds.isel(time=slice(24, 40)).chunk({"time": 24}).to_zarr(
        store.url,
        append_dim="time",
        zarr_format=3,
        consolidated=False,
        storage_options=store.zarr_options,
    )
    assert (
        zarr.open_group(store.url, mode="r", storage_options=store.zarr_options)[
            "2m_temperature"
        ].shape[0]
        == 40
    )
    assert store.open().sizes["time"] == 24  # readers: last committed state
    r = store.append(ds)
    assert (r.appended, r.skipped) == (24, 24)
    out = store.open()
    np.testing.assert_array_equal(out.time.values, ds.time.values)
    np.testing.assert_array_equal(out["10m_wind_speed"].values, ds["10m_wind_speed"].values)


def test_uncommitted_first_write_is_replaced(tmp_path):
    ds = canonical_dataset(nt=10)
    url = str(tmp_path / "s.zarr")
    ds.isel(time=slice(0, 4)).to_zarr(url, zarr_format=3, consolidated=False)  # crashed
    store = Store(url)
    assert store.read_commit() is None
    store.append(ds)
    assert store.open().sizes["time"] == 10


def test_commit_record_is_a_zarr_group(tmp_path):
    store = Store(str(tmp_path / "s.zarr"))
    store.append(canonical_dataset(nt=5))
    meta = json.loads((tmp_path / "s.zarr" / COMMIT_KEY).read_text())
    assert meta["node_type"] == "group"
    assert meta["attributes"]["wxc_commit"]["_data"]["n_time"] == 5


def test_static_mask_and_statistics(store_url):
    ds = canonical_dataset(nt=72, nlat=5, nlon=6)
    for v in ds.data_vars:
        ds[v][:, 0, :2] = np.nan  # "sea"
    store = _store(store_url)
    store.append(ds.isel(time=slice(0, 30)))
    store.append(ds)
    valid = store.static()["valid_mask"].values
    assert valid.sum() == 28 and not valid[0, :2].any()
    stats = store.statistics()
    x = ds["2m_temperature"].values[:, valid].astype(np.float64)
    n = stats.normalisation(["2m_temperature"])
    assert n["mean"][0] == pytest.approx(x.mean(), rel=1e-10)
    assert n["std"][0] == pytest.approx(x.std(), rel=1e-8)
    assert n["tendency_std"][0] == pytest.approx(np.diff(x, axis=0).std(), rel=1e-8)
    # the incremental climatology equals the one fitted on everything at once
    hours = ds.time.values.astype("datetime64[s]").astype(np.int64) / 3600.0
    full = ClimAccumulator(2, valid.shape)
    data = np.stack([ds[v].values for v in stats.variables], axis=1)
    full.add(data, hours, valid)
    np.testing.assert_allclose(
        stats.clim.xty, full.xty, rtol=0, atol=1e-6 * np.abs(full.xty).max()
    )  # float32 products
    c = stats.climatology(hours[:24], ["2m_temperature"], valid)
    assert c.shape == (24, 1, 5, 6)
    assert np.isnan(c[:, :, 0, :2]).all()
