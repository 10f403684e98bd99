"""The store: commits, idempotent appends, gaps, revisions, interrupted writes, statistics.

Every test runs on a local path and (marked ``s3``) on the S3-compatible server."""

import json

import numpy as np
import pytest
import zarr

from tests.factories import canonical_dataset
from wxmodels.data.commit import Commit
from wxmodels.data.stats import ClimAccumulator
from wxmodels.data.store import COMMIT_KEY, Store
from wxmodels.data.writepass import _moments_nan_free, hash_steps
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


def test_a_store_from_before_the_crc32c_hashes_keeps_its_own(store_url):
    """A store created when step hashes were zlib's CRC-32 (its commit record does not say
    which) is still compared and revised with CRC-32: re-offered steps are skipped, a changed
    one is a revision, and the hashes stored for appended steps are of the same kind."""
    ds = canonical_dataset(nt=48)
    store = _store(store_url)
    store.append(ds.isel(time=slice(0, 24)))
    assert store.read_commit().hash == "crc32c"
    # make it a store of the earlier kind: CRC-32 hashes, no `hash` in the record
    block = np.stack([ds[v].values[:24] for v in sorted(ds.data_vars)], axis=1)
    hashes = zarr.open_array(
        store.sub_url("aux/step_hash"), mode="r+", storage_options=store.zarr_options, zarr_format=3
    )
    hashes[:] = hash_steps(block, "crc32")
    with store.writing():
        c = store.read_commit()
        c.hash = "crc32"
        record = c.to_json()
        del record["_data"]["hash"]
        store.write_commit(Commit.from_json(record))
    assert store.read_commit().hash == "crc32"
    rep = store.append(ds)
    assert (rep.appended, rep.skipped, rep.revised) == (24, 24, [])
    full = np.stack([ds[v].values for v in sorted(ds.data_vars)], axis=1)
    np.testing.assert_array_equal(store.step_hashes(), hash_steps(full, "crc32"))
    ds2 = ds.copy(deep=True)
    ds2["2m_temperature"][30] += 1.0
    rep = store.append(ds2)
    assert (rep.appended, rep.revised) == (0, ["2020-01-02 06:00:00"])
    full = np.stack([ds2[v].values for v in sorted(ds2.data_vars)], axis=1)
    np.testing.assert_array_equal(store.step_hashes(), hash_steps(full, "crc32"))
    assert store.append(ds2).revised == []


def test_step_hash_schemes_differ_and_see_a_flipped_bit():
    block = canonical_dataset(nt=4).to_array().transpose("time", "variable", ...).values
    for scheme in ("crc32c", "crc32"):
        h = hash_steps(block, scheme)
        assert len(set(h.tolist())) == 4
        flipped = block.copy()
        flipped.view(np.uint32)[2, 1, 3, 4] ^= 1
        changed = hash_steps(flipped, scheme) != h
        assert changed.tolist() == [False, False, True, False]
    assert (hash_steps(block, "crc32c") != hash_steps(block, "crc32")).all()
    with pytest.raises(ValueError, match="unknown step hash"):
        hash_steps(block, "md5")


def test_statistics_of_nan_free_chunks_match_float64_on_a_global_grid():
    """The write pass's float32 moments (values shifted by the first step's mean) against
    float64 numbers, on a chunk the size of a day of the 1.5-degree grid."""
    rng = np.random.default_rng(1)
    t = np.arange(24)[:, None, None]
    lat = np.linspace(-90, 90, 121)[None, :, None]
    x = (288 - 40 * np.abs(np.sin(np.radians(lat))) + 3 * np.sin(t / 4)) + rng.standard_normal(
        (24, 121, 240)
    )
    x = x.astype(np.float32)
    (n, mean, m2), (nd, dmean, dm2) = _moments_nan_free(x)
    x64 = x.astype(np.float64)
    d64 = np.diff(x64, axis=0)
    assert (n, nd) == (x.size, d64.size)
    assert mean == pytest.approx(x64.mean(), rel=1e-9)
    assert m2 == pytest.approx(((x64 - x64.mean()) ** 2).sum(), rel=1e-6)
    assert dmean == pytest.approx(d64.mean(), rel=1e-5, abs=1e-6)
    assert dm2 == pytest.approx(((d64 - d64.mean()) ** 2).sum(), rel=1e-6)
    assert _moments_nan_free(x[:1])[1] is None
