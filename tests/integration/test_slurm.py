"""``runtime.cluster: slurm`` on a real SLURM (slurmctld + slurmd on loopback, started here):
the compression matrix runs on SLURM-launched, warmed workers and builds the same cells as a
LocalCluster; a job SLURM refuses, a job that dies and a worker that never joins fail with a
clear message in bounded time, their jobs cancelled."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

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
    """What a cell built, without where and how long: its ONNX file's digest and its record
    (its id and seed too: the same inputs and code)."""
    out = {}
    for c in matrix.cells:
        digest = hashlib.sha256(Path(c.onnx).read_bytes()).hexdigest()
        out[c.name] = (digest, c.id, c.seed, c.pack_bytes, c.params, c.sparsity, c.parity)
    return out


def _wxc(*args: str) -> subprocess.CompletedProcess[str]:
    """``wxc ARGS`` as a user runs it (this environment: the Prefect server, ``SLURM_CONF``)."""
    env = {k: v for k, v in os.environ.items() if k != "WXC_DASK_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _job_logs(log_dir: Path) -> dict[str, str]:
    """``{job id: its stderr}`` of the worker jobs that wrote to ``log_dir``."""
    return {
        p.stem.rsplit("-", 1)[1]: p.read_text(errors="replace")
        for p in sorted(log_dir.glob("wxc-worker-*.err"))
    }


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny store and teacher; the raw config of a two-cell matrix."""
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


def _slurm_config(raw: dict, tmp_path: Path) -> Path:
    """``raw`` with ``runtime.cluster: slurm`` and a workdir of its own, as a YAML file."""
    rt = _runtime(tmp_path / "logs").model_dump(mode="json")
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump({**raw, "workdir": str(tmp_path / "work"), "runtime": rt}))
    return path


def test_run_cluster_gives_warm_workers_in_slurm_jobs_and_cancels_them(
    slurm, no_shared_cluster, tmp_path
):
    from distributed import Client

    from flows.runners import run_cluster

    with run_cluster(_runtime(tmp_path)) as address, Client(address) as client:
        # before any task: two workers, each in a SLURM job of its own, already warm
        seen = client.run(_probe)
        jobs = sorted(p["job"] for p in seen.values())
        assert len(seen) == 2 and None not in jobs and len(set(jobs)) == 2, seen
        assert _queued(jobs) == jobs  # the jobs SLURM runs are the scheduler's workers
        assert all(p["warm"] for p in seen.values()), seen
        assert all(p["malloc"] is None for p in seen.values()), seen  # glibc's own thresholds
    _wait_gone(jobs)  # the block's end cancelled them
    assert sorted(_job_logs(tmp_path)) == jobs


@pytest.mark.slow
def test_wxc_compress_on_slurm_builds_what_a_local_cluster_builds(
    slurm, teacher, prefect_server, no_shared_cluster, monkeypatch, tmp_path
):
    from flows.runners import dask_runner, run_cluster
    from flows.stages import compress_flow
    from flows.state import load_latest, save_latest
    from wxmodels.config import load_config
    from wxmodels.pipeline.records import MatrixResult

    # a cell's seed derives from the code version: one for both runs, whatever is committed
    # meanwhile (workers inherit it: the jobs by sbatch, the LocalCluster's at their start)
    monkeypatch.setenv("WXC_GIT_COMMIT", "slurm-vs-local")
    _, raw, rec = teacher
    path = _slurm_config(raw, tmp_path)
    cfg = load_config(path)
    save_latest(cfg, "train", rec)
    r = _wxc("compress", "--config", str(path))
    assert r.returncode == 0, r.stderr[-3000:]
    on_slurm = load_latest(cfg, "compress", MatrixResult, "test")

    logs = _job_logs(tmp_path / "logs")
    assert len(logs) == 2, logs  # two worker jobs ...
    assert all("warm in" in text for text in logs.values()), logs  # ... warmed as they joined
    ran = {c.name for c in on_slurm.cells if any(f"'cell-{c.name}'" in t for t in logs.values())}
    assert ran == {"prune", "int8"}, logs  # ... ran the cells
    _wait_gone(list(logs))

    local_cfg = CycleConfig.model_validate({**raw, "workdir": str(tmp_path / "local-work")})
    with run_cluster(local_cfg.runtime) as address:
        on_local = compress_flow.with_options(task_runner=dask_runner(local_cfg.runtime, address))(
            local_cfg, rec.dir
        )
    assert not on_slurm.failures and not on_local.failures
    assert _cells(on_slurm) == _cells(on_local)


@pytest.mark.slow
def test_wxc_hindcast_on_slurm_equals_the_serial_run(slurm, teacher, tmp_path):
    """``wxc hindcast --config`` with ``runtime.cluster: slurm`` runs its blocks in the jobs."""
    import xarray as xr

    from wxmodels.pipeline.promote import _signature
    from wxmodels.registry import Registry

    tmp, raw, rec = teacher
    tdir = Path(rec.dir)
    spec = next(p for p in (tdir / "model.json", tdir / "torch" / "model.json") if p.exists())
    manifest = {
        "kind": "teacher",
        "runtimes": ["onnx"],
        "signature": _signature(tdir / "model.onnx", json.loads(spec.read_text())),
        "lineage": {"store_url": raw["data"]["store"]},
    }
    files = {"model.onnx": tdir / "model.onnx", "model.json": spec}
    if (tdir / "climatology.nc").exists():  # the model's input climatology
        files["climatology.nc"] = tdir / "climatology.nc"
    reg = tmp_path / "registry"
    version = Registry(str(reg)).publish(raw["name"], files, manifest)
    args = ["hindcast", "--model", f"{raw['name']}@{version}", "--registry", str(reg),
            "--start", "2024-01-07T00:00", "--end", "2024-01-08T18:00", "--every", "6",
            "--leads", "1,3", "--block", "2"]  # fmt: skip
    r = _wxc(
        *args, "--out", str(tmp_path / "slurm.zarr"), "--config", str(_slurm_config(raw, tmp_path))
    )
    assert r.returncode == 0, r.stderr[-3000:]
    done = tmp_path / "slurm.zarr.hindcast" / "done"
    ran_in = {json.loads(p.read_text())["slurm_job"] for p in done.glob("*.json")}
    jobs = set(_job_logs(tmp_path / "logs"))
    assert len(jobs) == 2 and ran_in <= jobs, (ran_in, jobs)  # every block in a worker job
    _wait_gone(sorted(jobs))
    r = _wxc(*args, "--out", str(tmp_path / "serial.zarr"))  # in this process
    assert r.returncode == 0, r.stderr[-3000:]
    with xr.open_zarr(tmp_path / "slurm.zarr") as a, xr.open_zarr(tmp_path / "serial.zarr") as b:
        xr.testing.assert_identical(a.load(), b.load())


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
