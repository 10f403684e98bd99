"""The store: commits, idempotent appends, gaps, revisions, interrupted writes."""

import json

import numpy as np
import pytest
import zarr

from tests.factories import canonical_dataset
from wxmodels.data.store import COMMIT_KEY, Store
from wxmodels.errors import IngestError


def test_first_write_then_append_then_idempotent(tmp_path):
    ds = canonical_dataset(nt=48)
    store = Store(str(tmp_path / "s.zarr"))
    r1 = store.append(ds.isel(time=slice(0, 30)), time_chunk=24)
    assert (r1.appended, r1.skipped) == (30, 0)
    r2 = store.append(ds, time_chunk=24)
    assert (r2.appended, r2.skipped) == (18, 30)
    assert r2.version != r1.version
    r3 = store.append(ds, time_chunk=24)
    assert (r3.appended, r3.skipped) == (0, 48)
    assert r3.version == r2.version
    out = store.open()
    np.testing.assert_array_equal(out["2m_temperature"].values, ds["2m_temperature"].values)
    assert out.sizes["time"] == 48
    # chunks stay uniform: the partial chunk was filled first
    arr = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["2m_temperature"]
    assert arr.chunks[0] == 24
    hist = store.read_commit().history
    assert [h["appended"] for h in hist] == [30, 18]


def test_gap_is_refused_and_store_unchanged(tmp_path):
    ds = canonical_dataset(nt=48)
    store = Store(str(tmp_path / "s.zarr"))
    store.append(ds.isel(time=slice(0, 20)))
    v = store.version()
    with pytest.raises(IngestError, match="gap in time"):
        store.append(ds.isel(time=slice(25, 48)))
    assert store.version() == v and store.open().sizes["time"] == 20


def test_changed_values_of_committed_steps_are_a_revision(tmp_path):
    ds = canonical_dataset(nt=24)
    store = Store(str(tmp_path / "s.zarr"))
    v1 = store.append(ds).version
    ds2 = ds.copy(deep=True)
    ds2["2m_temperature"][3] += 1.0
    ds2["10m_wind_speed"][5] += 0.5
    rep = store.append(ds2)
    assert rep.appended == 0
    assert rep.revised == [
        str(ds.time.values[3])[:19].replace("T", " "),
        str(ds.time.values[5])[:19].replace("T", " "),
    ]
    assert rep.skipped == 22
    assert rep.version != v1
    out = store.open()
    np.testing.assert_array_equal(out["2m_temperature"].values, ds2["2m_temperature"].values)
    np.testing.assert_array_equal(out["10m_wind_speed"].values, ds2["10m_wind_speed"].values)
    assert store.read_commit().history[-1]["revised"] == rep.revised
    # statistics follow the revision
    mean_t = store.statistics().normalisation(["2m_temperature"])["mean"][0]
    assert mean_t == pytest.approx(float(ds2["2m_temperature"].astype("f8").mean()), rel=1e-12)
    assert store.append(ds2).revised == []  # applied once


def test_schema_mismatch(tmp_path):
    store = Store(str(tmp_path / "s.zarr"))
    store.append(canonical_dataset(nt=10))
    other = canonical_dataset(nt=20, variables=("2m_temperature",))
    with pytest.raises(IngestError, match="variables differ"):
        store.append(other.isel(time=slice(10, 20)))


def test_interrupted_append_is_invisible_and_repaired(tmp_path):
    """A crash after the data write but before the commit: readers see the last commit, and
    the next append removes the debris and appends exactly once."""
    ds = canonical_dataset(nt=48)
    url = str(tmp_path / "s.zarr")
    store = Store(url)
    store.append(ds.isel(time=slice(0, 24)))
    # simulate the crash: write the next steps with xarray but never commit
    ds.isel(time=slice(24, 40)).chunk({"time": 24}).to_zarr(
        url, append_dim="time", zarr_format=3, consolidated=False
    )
    assert zarr.open_group(url, mode="r")["2m_temperature"].shape[0] == 40
    assert store.open().sizes["time"] == 24  # readers: last committed state
    r = store.append(ds)
    assert (r.appended, r.skipped) == (24, 24)
    out = store.open()
    assert out.sizes["time"] == 48
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
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert "_wxc" in dict(g.groups())
