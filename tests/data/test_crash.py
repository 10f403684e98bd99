"""SIGKILL at the worst moments: readers always see the last committed state, and the next run
finishes the job with no duplicate, missing or fill-value step."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store
from wxmodels.data.synthetic import write_synthetic_files

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("_ingest_child.py")
VARS = ["2m_temperature", "10m_u_component_of_wind", "total_precipitation_rate"]


def _cfg(tmp_path, store_url=None, so=None, chunk=24):
    return DataConfig.model_validate(
        {
            "source": {
                "kind": "files",
                "paths": [str(tmp_path / "landing" / "*.nc")],
                "accumulation_hours": 1.0,
            },
            "store": store_url or str(tmp_path / "store.zarr"),
            "storage_options": so or {},
            "variables": VARS,
            "time_chunk": chunk,
        }
    )


def _child(
    cfg: DataConfig,
    crash: str | None = None,
    timeout=120,
    barrier: Path | None = None,
    pause: str | None = None,
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("WXC_CRASH_AT", None)
    env.pop("WXC_PAUSE_AT", None)
    if crash:
        env["WXC_CRASH_AT"] = crash
    if barrier is not None:
        env["WXC_TEST_BARRIER"] = str(barrier)
        env["WXC_PAUSE_AT"] = "append:after-data:1.0"  # hold each writer before its commit
    if pause is not None:
        env["WXC_PAUSE_AT"] = pause
    return subprocess.Popen(
        [sys.executable, str(CHILD), cfg.model_dump_json()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _expected(tmp_path) -> xr.Dataset:
    from wxmodels.data.canonical import to_canonical

    parts = [
        to_canonical(xr.open_dataset(f), accumulation_hours=1.0)[VARS].load()
        for f in sorted((tmp_path / "landing").glob("*.nc"))
    ]
    return xr.concat(parts, "time")


def _assert_consistent(store: Store, expected: xr.Dataset) -> int:
    """Committed steps are a prefix of the expected data: no gap, duplicate or fill value."""
    commit = store.read_commit()
    if commit is None:
        return 0
    ds = store.open(chunks=None)
    n = ds.sizes["time"]
    assert n == commit.n_time
    np.testing.assert_array_equal(ds.time.values, expected.time.values[:n])
    for v in VARS:
        np.testing.assert_array_equal(ds[v].values, expected[v].values[:n])
    assert len(store.step_hashes()) >= n
    return n


@pytest.mark.parametrize("point", ["append:after-data"])
def test_crash_point_during_append(tmp_path, point):
    write_synthetic_files(tmp_path / "landing", days=4, nlat=5, nlon=6, seed=1)
    late = sorted((tmp_path / "landing").glob("*.nc"))[2:]
    for f in late:
        f.rename(f.with_suffix(".later"))
    cfg = _cfg(tmp_path)
    ingest(cfg)
    for f in late:
        f.with_suffix(".later").rename(f)
    expected = _expected(tmp_path)
    p = _child(cfg, crash=point)
    assert p.wait(120) == -signal.SIGKILL
    store = Store(cfg.store)
    assert _assert_consistent(store, expected) == 48  # readers: the last commit
    assert store.open().sizes["time"] == 48
    rep = ingest(cfg)
    assert rep.appended == 48
    assert _assert_consistent(store, expected) == 96


@pytest.mark.parametrize(
    "point", ["revision:after-stage", "revision:mid-region", "revision:after-region"]
)
def test_crash_point_during_revision(tmp_path, point):
    write_synthetic_files(tmp_path / "landing", days=2, nlat=5, nlon=6, seed=1)
    cfg = _cfg(tmp_path)
    ingest(cfg)
    store = Store(cfg.store)
    before = _expected(tmp_path)
    # the provider replaces day 2 with revised values (as ERA5T becomes ERA5)
    f = sorted((tmp_path / "landing").glob("*.nc"))[1]
    with xr.open_dataset(f) as ds:
        new = ds.load()
    new["t2m"][5:9] += 0.7
    new["u10"][5:9] -= 1.0
    f.unlink()
    new.to_netcdf(f)
    after = _expected(tmp_path)
    p = _child(cfg, crash=point)
    assert p.wait(120) == -signal.SIGKILL
    _assert_consistent(store, before)  # still the committed (old) values
    rep = ingest(cfg)
    assert len(rep.revised) == 4 or point != "revision:after-stage"
    _assert_consistent(store, after)
    commit = store.read_commit()
    assert commit.revision is None
    assert sum(len(h.get("revised", [])) for h in commit.history) == 4
    assert not store.fs.exists(f"{store.root}/aux/revision")
    mean = store.statistics().normalisation(["2m_temperature"])["mean"][0]
    assert mean == pytest.approx(float(after["2m_temperature"].astype("f8").mean()), rel=1e-10)


def test_random_sigkill_during_ingest(tmp_path):
    """Files arrive in batches; each ingest is killed at a random moment after it has started
    (its imports done); readers are checked after every kill; a last clean run completes the
    store exactly. Every other writer is held before its commit (for longer than the test
    waits), so that those are killed whatever the machine's speed; the others may finish."""
    src = tmp_path / "all"
    write_synthetic_files(src, days=30, nlat=24, nlon=32, seed=2)
    (tmp_path / "landing").mkdir()
    files = sorted(src.glob("*.nc"))
    cfg = _cfg(tmp_path, chunk=6)
    store = Store(cfg.store)
    rng = random.Random(0)
    kills = 0
    for batch in range(6):
        for f in files[batch * 5 : (batch + 1) * 5]:
            f.rename(tmp_path / "landing" / f.name)
        barrier = tmp_path / f"barrier-{batch}"
        barrier.mkdir()
        hold = "append:after-data:120" if batch % 2 else "append:after-data:0"
        p = _child(cfg, barrier=barrier, pause=hold)
        deadline = time.monotonic() + 120
        while not list(barrier.glob("ready-*")):  # imported: the ingest itself starts now
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.01)
        (barrier / "go").touch()
        time.sleep(rng.uniform(0.0, 1.5))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait(120)
        expected = _expected(tmp_path)
        _assert_consistent(store, expected)
    ingest(cfg)
    assert _assert_consistent(store, _expected(tmp_path)) == 30 * 24
    assert kills >= 3, kills


def test_reader_after_a_kill_between_array_resizes(tmp_path):
    """A writer killed after growing some arrays but not others leaves shapes that disagree
    beyond the commit (xarray refuses to open such a group); readers still get exactly the
    committed steps, and the next run repairs the store."""
    import zarr

    write_synthetic_files(tmp_path / "landing", days=2, nlat=5, nlon=6, seed=1)
    cfg = _cfg(tmp_path)
    ingest(cfg)
    store = Store(cfg.store)
    n = store.read_commit().n_time
    group = zarr.open_group(cfg.store, mode="a", zarr_format=3)
    for name in ("time", VARS[0]):  # grown; the other variables not yet
        arr = group[name]
        arr.resize((n + 24, *arr.shape[1:]))
    with pytest.raises(ValueError, match="conflicting sizes"):
        xr.open_zarr(cfg.store, consolidated=False, zarr_format=3)
    assert _assert_consistent(store, _expected(tmp_path)) == n
    ingest(cfg)  # nothing new: the next run leaves the committed steps as they are
    assert _assert_consistent(store, _expected(tmp_path)) == n
