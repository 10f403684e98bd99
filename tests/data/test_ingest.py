"""Ingest from files: twice adds nothing; a bad file is left out; missing inputs are named."""

import os
import shutil

import numpy as np
import pytest

from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store
from wxmodels.data.synthetic import write_synthetic_files
from wxmodels.errors import DataError, IngestError

VARS = ["2m_temperature", "10m_u_component_of_wind", "total_precipitation_rate"]


def _cfg(tmp_path, paths, store=None, **kw):
    url, so = store or (str(tmp_path / "store.zarr"), {})
    return DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": paths, "accumulation_hours": 1.0, **kw},
            "store": url,
            "storage_options": so,
            "variables": VARS,
            "time_chunk": 24,
        }
    )


@pytest.fixture
def landing(tmp_path):
    d = tmp_path / "landing"
    write_synthetic_files(d, days=3, nlat=4, nlon=6, seed=5)
    return d


def test_twice_adds_nothing_and_reads_nothing(tmp_path, landing, store_url):
    cfg = _cfg(tmp_path, [str(landing / "*.nc")], store=store_url)
    r1 = ingest(cfg)
    assert (r1.appended, r1.skipped, r1.read) == (72, 0, 3)
    r2 = ingest(cfg)
    assert (r2.appended, r2.read) == (0, 0)  # the ledger knows every file: none is opened
    assert r2.version == r1.version
    # a file touched without changing its content is read again, compared, and skipped
    f = sorted(landing.glob("*.nc"))[1]
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    r3 = ingest(cfg)
    assert (r3.appended, r3.skipped, r3.read, r3.revised) == (0, 24, 1, [])
    assert r3.version == r1.version


def test_new_day_is_appended(tmp_path, landing):
    cfg = _cfg(tmp_path, [str(landing / "*.nc")])
    first = sorted(landing.glob("*.nc"))
    late = tmp_path / "late"
    late.mkdir()
    shutil.move(first[-1], late / first[-1].name)
    assert ingest(cfg).appended == 48
    shutil.move(late / first[-1].name, first[-1])
    rep = ingest(cfg)
    assert (rep.appended, rep.skipped, rep.read) == (24, 0, 1)


def test_corrupt_file_is_left_out_with_reason(tmp_path, landing):
    files = sorted(landing.glob("*.nc"))
    data = files[-1].read_bytes()
    files[-1].write_bytes(data[: len(data) // 3])  # truncated
    rep = ingest(_cfg(tmp_path, [str(landing / "*.nc")]))
    assert rep.appended == 48
    assert len(rep.problems) == 1 and rep.problems[0]["path"] == str(files[-1])
    assert rep.problems[0]["reason"]


def test_only_bad_files_leave_store_untouched(tmp_path, landing):
    for f in landing.glob("*.nc"):
        f.write_bytes(b"not a netcdf file")
    with pytest.raises(IngestError, match="no usable input"):
        ingest(_cfg(tmp_path, [str(landing / "*.nc")]))
    assert not Store(str(tmp_path / "store.zarr")).exists()


def test_missing_files_and_variables(tmp_path, landing):
    with pytest.raises(DataError, match="no input files match"):
        ingest(_cfg(tmp_path, [str(tmp_path / "nothing" / "*.nc")]))
    cfg = DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": [str(landing / "*.nc")], "accumulation_hours": 1},
            "store": str(tmp_path / "s2.zarr"),
            "variables": [*VARS, "2m_specific_humidity"],
        }
    )
    with pytest.raises(DataError, match="2m_specific_humidity"):
        ingest(cfg)
    assert not Store(str(tmp_path / "s2.zarr")).exists()


def test_nan_only_file_is_quarantined(tmp_path, landing):
    import xarray as xr

    f = sorted(landing.glob("*.nc"))[1]
    with xr.open_dataset(f) as ds:
        bad = ds.load()
    bad["t2m"][:] = np.nan
    f.unlink()
    bad.to_netcdf(f)
    rep = ingest(_cfg(tmp_path, [str(landing / "*.nc")]))
    assert any("NaN everywhere" in p["reason"] for p in rep.problems)
    assert rep.appended == 24  # day 1 only: day 3 would leave a gap, so it waits


def test_more_inputs_than_files_kept_open(tmp_path):
    """Six day files through a file cache of two: every file is opened again when its chunk is
    written, the store holds each file's values, and the process's own file-cache setting is
    left as it was."""
    import xarray as xr

    files = write_synthetic_files(tmp_path / "in", days=6, nlat=4, nlon=6, seed=9)
    before = xr.get_options()["file_cache_maxsize"]
    cfg = _cfg(tmp_path, [str(p) for p in files]).model_copy(update={"max_open_files": 2})
    rep = ingest(cfg)
    assert (rep.appended, rep.problems) == (6 * 24, [])
    assert xr.get_options()["file_cache_maxsize"] == before
    ds = Store(cfg.store).open(chunks=None)
    with xr.open_dataset(files[4]) as src:
        want = src["t2m"].sortby(["latitude", "longitude"]).values
    np.testing.assert_array_equal(ds["2m_temperature"].isel(time=slice(96, 120)).values, want)
