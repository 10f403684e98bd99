"""Item 3 of the fault suite: one writer per store. Concurrent ingests (first write and
appends, on a local disk and on the S3 server) end with the union of what they offered and
nothing lost; a killed writer's lock is taken over; a landing directory's files are archived
only once their steps are committed."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.data.test_crash import VARS, _assert_consistent, _child, _expected
from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store
from wxmodels.data.synthetic import write_synthetic_files

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAYS = 5


def _together(cfgs: list[DataConfig], barrier: Path) -> list:
    """Start one ingest per config, released at the same moment once all have imported."""
    barrier.mkdir()
    procs = [_child(c, barrier=barrier) for c in cfgs]
    deadline = time.monotonic() + 300
    while len(list(barrier.glob("ready-*"))) < len(procs):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    (barrier / "go").touch()
    return procs


def _cfg(url, so, paths=None, **extra) -> DataConfig:
    return DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": paths, "accumulation_hours": 1.0}
            if paths is not None
            else extra.pop("source"),
            "store": url,
            "storage_options": so,
            "variables": VARS,
            "time_chunk": 24,
            **extra,
        }
    )


@pytest.mark.parametrize("appending", [False, True], ids=["first-write", "append"])
def test_concurrent_ingests_end_with_the_union(tmp_path, store_url, appending):
    url, so = store_url
    write_synthetic_files(tmp_path / "landing", days=DAYS, nlat=10, nlon=12, seed=1)
    files = [str(f) for f in sorted((tmp_path / "landing").glob("*.nc"))]
    if appending:
        ingest(_cfg(url, so, files[:1]))
    # three writers at once, each offering a different prefix of the record
    procs = _together([_cfg(url, so, files[: k + 3]) for k in range(3)], tmp_path / "barrier")
    appended = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
        appended += int(out.split()[0])
    # each step was written by exactly one of them: they took turns, each appending what the
    # store lacked when its turn came
    assert appended == (DAYS - appending) * 24
    store = Store(url, so)
    assert _assert_consistent(store, _expected(tmp_path)) == DAYS * 24  # the union, in order
    commit = store.read_commit()
    assert set(commit.inputs) == set(files)  # every input is in the ledger, none twice
    assert np.all(store.step_hashes() != 0)


def test_a_killed_writer_s_lease_is_taken_over(tmp_path, s3_server):
    url, so = f"s3://{s3_server.bucket()}/store.zarr", dict(s3_server.storage_options)
    write_synthetic_files(tmp_path / "landing", days=3, nlat=5, nlon=6, seed=1)
    files = [str(f) for f in sorted((tmp_path / "landing").glob("*.nc"))]
    cfg = _cfg(url, so, files, lock_lease_s=3)
    p = _child(cfg, crash="append:after-data")  # dies holding the lease
    assert p.wait(300) == -signal.SIGKILL, p.stderr.read().decode()[-3000:]
    store = Store(url, so)
    tickets = store.fs.find(f"{store.root}/_wxc/lease")
    assert tickets, "the killed writer left its lease"
    rep = ingest(cfg)  # waits until the lease is stale (3 s), then takes it over
    assert rep.appended == 3 * 24
    assert _assert_consistent(store, _expected(tmp_path)) == 3 * 24
    store.fs.invalidate_cache()
    assert store.fs.find(f"{store.root}/_wxc/lease/tickets") == []  # released


def test_two_ingests_of_one_landing_directory_lose_nothing(tmp_path):
    landing = tmp_path / "landing"
    write_synthetic_files(landing, days=DAYS, nlat=10, nlon=12, seed=1)
    expected = _expected(tmp_path)
    src = {
        "kind": "landing",
        "directory": str(landing),
        "archive": True,
        "accumulation_hours": 1.0,
    }
    cfg = _cfg(str(tmp_path / "store.zarr"), {}, source=src)
    procs = _together([cfg, cfg], tmp_path / "barrier")
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    store = Store(cfg.store)
    assert _assert_consistent(store, expected) == DAYS * 24
    archived = sorted(f.name for f in (landing / "ingested").glob("*.nc"))
    assert archived == sorted(Path(p).name for p in store.read_commit().inputs)
    assert not list(landing.glob("*.nc"))  # everything archived, after its commit
