"""``runtime.cluster: slurm`` on a real SLURM (slurmctld + slurmd on loopback, started here):
the compression matrix runs on SLURM-launched, warmed workers and builds the same cells as a
LocalCluster; a job SLURM refuses, a job that dies and a worker that never joins fail with a
clear message in bounded time, their jobs cancelled."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.factories import tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.errors import WxcError

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node SLURM on loopback for the module (``SLURM_CONF`` exported); skipped,
    saying why, where it cannot run (not installed, not root, daemons that fail)."""
    from infra.slurm import LoopbackSlurm, slurm_unavailable

    why = slurm_unavailable()
    if why:
        pytest.skip(why)
    cluster = LoopbackSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start(timeout=60)
    except RuntimeError as e:
        pytest.skip(f"the loopback SLURM did not start: {e}")
    old = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env())
    yield cluster
    cluster.stop()
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


@pytest.fixture
def no_shared_cluster(monkeypatch):
    """The session's LocalCluster address (``WXC_DASK_ADDRESS``) would win over SLURM."""
    monkeypatch.delenv("WXC_DASK_ADDRESS", raising=False)


def _runtime(log_dir: Path, **slurm):
    from wxmodels.config.runtime import RuntimeConfig

    return RuntimeConfig(
        cluster="slurm",
        torch_threads=1,
        slurm={
            "partition": "debug",
            "account": "wxc-tests",
            "walltime": "00:15:00",
            "cores": 1,
            "memory": "2GiB",
            "jobs": 2,
            "interface": "lo",
            "log_directory": str(log_dir),
            "job_extra_directives": ["--comment=wxc-test"],
            **slurm,
        },
    )


def _queued(ids: list[str]) -> list[str]:
    """Those of ``ids`` still pending or running."""
    r = subprocess.run(
        ["squeue", "-h", "-t", "PD,R,CF", "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return [i for i in r.stdout.split() if i in ids]


def _wait_gone(ids: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _queued(ids):
        assert time.monotonic() < deadline, f"jobs {_queued(ids)} still queued after the run"
        time.sleep(0.2)


def _probe() -> dict:
    from flows.runners import WARM_MODULES

    return {
        "job": os.environ.get("SLURM_JOB_ID"),
        "warm": all(m in sys.modules for m in WARM_MODULES),
        "malloc": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
    }


def _cells(matrix) -> dict[str, tuple]:
    """What a cell built, without where and how long: its ONNX file's digest and its record."""
    out = {}
    for c in matrix.cells:
        digest = hashlib.sha256(Path(c.onnx).read_bytes()).hexdigest()
        out[c.name] = (digest, c.id, c.pack_bytes, c.params, c.sparsity, c.parity)
    return out


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny store and teacher, and the matrix's config (two cells)."""
    from wxmodels.data.ingest import ingest
    from wxmodels.pipeline.teacher import train_teacher

    tmp = tmp_path_factory.mktemp("slurm-matrix")
    raw = tiny_cycle_config(tmp)
    raw["train"].update(epochs=1, rollout_epochs=0, samples_per_epoch=48)
    raw["compress"]["cells"] = [c for c in raw["compress"]["cells"] if c["name"] != "distill-int8"]
    raw["compress"]["max_minutes_per_fit"] = 5  # a time budget would cut fits by speed
    cfg = CycleConfig.model_validate(raw)
    ingest(cfg.data)
    return tmp, raw, train_teacher(cfg)


@pytest.mark.slow
def test_matrix_on_slurm_workers_matches_a_local_cluster(
    slurm, teacher, prefect_server, dask_cluster, no_shared_cluster, tmp_path
):
    from distributed import Client

    from flows.runners import dask_runner, run_cluster
    from flows.stages import compress_flow

    tmp, raw, rec = teacher
    cfg = CycleConfig.model_validate(
        {**raw, "workdir": str(tmp_path / "slurm-work"), "runtime": {}}
    ).model_copy(update={"runtime": _runtime(tmp_path / "logs")})
    with run_cluster(cfg.runtime) as address:
        with Client(address) as client:
            # before any task: two workers, each in a SLURM job of its own, already warm
            seen = client.run(_probe)
        jobs = sorted(p["job"] for p in seen.values())
        assert len(seen) == 2 and None not in jobs and len(set(jobs)) == 2, seen
        assert _queued(jobs) == jobs  # the jobs SLURM runs are the scheduler's workers
        assert all(p["warm"] for p in seen.values()), seen
        assert all(p["malloc"] is None for p in seen.values()), seen  # glibc's own thresholds
        on_slurm = compress_flow.with_options(task_runner=dask_runner(cfg.runtime, address))(
            cfg, rec.dir
        )
    _wait_gone(jobs)  # the run's end cancelled them
    assert sorted(p.name for p in (tmp_path / "logs").glob("wxc-worker-*.err")) == [
        f"wxc-worker-{j}.err" for j in jobs
    ]

    local_cfg = CycleConfig.model_validate({**raw, "workdir": str(tmp_path / "local-work")})
    on_local = compress_flow.with_options(task_runner=dask_runner(local_cfg.runtime, dask_cluster))(
        local_cfg, rec.dir
    )
    assert not on_slurm.failures and not on_local.failures
    assert set(_cells(on_slurm)) == {"prune", "int8"}
    assert _cells(on_slurm) == _cells(on_local)


def test_a_partition_that_does_not_exist_fails_at_once(slurm, no_shared_cluster, tmp_path):
    from flows.runners import run_cluster

    t = time.monotonic()
    with (
        pytest.raises(WxcError, match=r"SLURM refuses the worker job.*invalid partition"),
        run_cluster(_runtime(tmp_path, partition="no-such-partition")),
    ):
        pass
    assert time.monotonic() - t < 30
    assert slurm.jobs() == []  # nothing was queued


def test_a_job_that_dies_is_reported_with_its_log(slurm, no_shared_cluster, tmp_path):
    from flows.runners import run_cluster

    rt = _runtime(tmp_path, job_script_prologue=["echo 'no python here' >&2", "exit 3"])
    with (
        pytest.raises(WxcError, match=r"SLURM job \d+ failed before its Dask worker joined") as e,
        run_cluster(rt),
    ):
        pass
    assert str(tmp_path / "wxc-worker-") in str(e.value) and "no python here" in str(e.value)


def test_a_worker_that_never_joins_fails_within_the_timeout(slurm, no_shared_cluster, tmp_path):
    from flows.runners import run_cluster

    rt = _runtime(tmp_path, job_script_prologue=["sleep 600"], wait_timeout_s=4)
    t = time.monotonic()
    with pytest.raises(WxcError) as e, run_cluster(rt):
        pass
    took = time.monotonic() - t
    msg = str(e.value)
    assert "0 of 2 SLURM workers joined in 4 s" in msg and "RUNNING" in msg, msg
    assert "squeue" in msg and str(tmp_path) in msg, msg
    assert took < 4 + 20, took
    ids = [line.split()[0] for line in msg.split("jobs: ")[1].split(", ")]
    _wait_gone(ids)  # the sleeping jobs were cancelled
