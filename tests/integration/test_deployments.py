"""The deployments as an operator gets them: served by ``python -m deployments`` against a
Prefect server, listed with their schedules, an ingest run triggered by hand, and a retrain
whose new teacher starts the compress-validate-promote deployment through its event; then the
stack stopped under a running ``wxc run``, which ends in one line."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from deployments import NAMES
from tests.factories import tiny_cycle_config
from tests.integration.ui import ui_shows
from wxmodels.config.deployments import DeploymentsConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_deployments_config_is_validated():
    with pytest.raises(ValueError, match="5-field cron"):
        DeploymentsConfig(ingest_cron="hourly")
    assert DeploymentsConfig(retrain_cron=None).retrain_cron is None


async def _deployments(client):
    out = {}
    for full in NAMES.values():
        try:
            out[full] = await client.read_deployment_by_name(full)
        except Exception:
            return None
    return out


async def _runs(client, deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    )


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _wxc(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_stack_deployments_and_the_new_teacher_trigger_on_a_dask_cluster(tmp_path):
    """``wxc up --dask 2`` (Prefect server, a real Dask scheduler + 2 worker processes on
    loopback, the deployments' runner): the deployments are listed with their schedules, a
    hand-triggered ingest completes, and a retrain's new teacher starts the
    compress-validate-promote deployment, whose matrix runs on that cluster by address."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from infra.s3.swift import free_port

    cycle = tmp_path / "cycle.yaml"
    raw = tiny_cycle_config(tmp_path)
    # one cell: what is tested is the stack and the trigger, the matrix is test_cycle's
    raw["compress"]["cells"] = [
        {"name": "int8", "steps": [{"method": "int8", "calibration_samples": 8}]}
    ]
    cycle.write_text(yaml.safe_dump(raw))
    dep = tmp_path / "deployments.yaml"
    dep.write_text(
        yaml.safe_dump(
            {
                "config": str(cycle),
                "ingest_cron": "15 * * * *",
                "retrain_cron": "0 3 * * 1",
                "tags": ["wxcompress", "test"],
            }
        )
    )
    port = free_port()
    env = {
        **os.environ,
        "WXC_HOME": str(tmp_path / "home"),
        "WXC_PREFECT_PORT": str(port),
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("WXC_DASK_ADDRESS", None)  # the stack's own cluster; `wxc run` its LocalCluster
    url = f"http://127.0.0.1:{port}/api"
    from infra.s3 import swift_available

    extra = ["--s3"] if swift_available() else []
    r = _wxc("up", "--deployments", str(dep), "--dask", "2", *extra, env=env)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        for name in ("prefect-server", "runner", "dask-scheduler", "dask-worker-0"):
            assert name in r.stdout
        if extra:  # the stack's S3 server answers S3 calls
            import s3fs

            st = json.loads((tmp_path / "home" / "stack.json").read_text())
            fs = s3fs.S3FileSystem(
                key="test:tester",
                secret="testing",
                client_kwargs={"endpoint_url": f"http://127.0.0.1:{st['services']['s3']['port']}"},
            )
            fs.mkdir("wxc-stack")
            fs.pipe_file("wxc-stack/ping", b"pong")
            assert fs.cat_file("wxc-stack/ping") == b"pong"
        # the stack's workers run with glibc's dynamic malloc thresholds (infra/dask)
        from distributed import Client

        stack = json.loads((tmp_path / "home" / "stack.json").read_text())
        dport = stack["services"]["dask-scheduler"]["port"]
        with Client(f"tcp://127.0.0.1:{dport}", timeout="60s") as c:
            c.wait_for_workers(2, timeout=120)  # `wxc up` does not wait for them to join
            trims = c.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert len(trims) == 2 and set(trims.values()) == {None}, trims
        st = _wxc("status", env=env)
        assert "runner" in st.stdout and "healthy" in st.stdout, st.stdout
        listed = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "ls"],
            capture_output=True,
            text=True,
            env={**env, "PREFECT_API_URL": url},
            timeout=120,
        )
        assert "wxc-ingest" in listed.stdout and "wxc-retrain" in listed.stdout, listed.stderr

        async def read(fn, *a):
            async with get_client() as client:
                return await fn(client, *a)

        with temporary_settings({PREFECT_API_URL: url}):
            deps = _wait(lambda: asyncio.run(read(_deployments)), 60, "the deployments")
            ingest, retrain, cvp = (deps[NAMES[k]] for k in ("ingest", "retrain", "compress"))
            assert ingest.schedules[0].schedule.cron == "15 * * * *"
            assert retrain.schedules[0].schedule.cron == "0 3 * * 1"
            assert "test" in ingest.tags and "retrain" in retrain.tags
            assert retrain.global_concurrency_limit.limit == 1
            run = run_deployment(NAMES["ingest"], timeout=300)
            assert run.state.is_completed(), run.state
            run = run_deployment(NAMES["retrain"], timeout=300)
            assert run.state.is_completed(), run.state
            cvp_runs = _wait(lambda: asyncio.run(read(_runs, cvp.id)), 120, "the triggered run")
            assert cvp_runs[0].parameters["teacher_dir"].startswith(str(tmp_path / "work"))

            def finished():
                got = asyncio.run(read(_runs, cvp.id))[0]
                return got if got.state.is_final() else None

            done = _wait(finished, 400, "the compress-validate-promote run")
            assert done.state.is_completed(), done.state
        from wxmodels.registry import Registry

        reg = Registry(str(tmp_path / "registry"))
        assert {"teacher", "edge"} <= set(reg.aliases("tiny"))
        # the matrix ran on the cluster's worker processes, not in a LocalCluster
        logs = (tmp_path / "home" / "logs" / "runner.log").read_text()
        assert "LocalCluster" not in logs
        # what an operator sees in the UI: the runs and the scorecard and model-card artifacts
        shot = tmp_path / "ui-runs.png"
        ui_shows(
            url.removesuffix("/api"),
            runs=["retrain", "compress-validate-promote", "compress-tiny", "evaluate-tiny"],
            artifacts=["scorecard", "model-card-edge"],
            screenshot=shot,
        )
        assert shot.exists() and shot.stat().st_size > 10_000
        # last, the stack stopped under a running `wxc run` (see _server_lost_under_a_run)
        _server_lost_under_a_run(raw, tmp_path, env)
    finally:
        d = _wxc("down", env=env)
        print((tmp_path / "home" / "logs" / "runner.log").read_text()[-4000:])
    assert d.returncode == 0
    assert "not running" in _wxc("status", env=env).stdout


def _server_lost_under_a_run(raw: dict, tmp_path, env: dict[str, str]) -> None:
    """``wxc down`` under a running ``wxc run`` ends the run within seconds, in one line with
    exit code 3, and keeps what was finished. The run uses the stack's store and teacher (the
    same data and training: nothing to ingest, the teacher is reused) and one long new cell,
    so it is building that cell when the server goes."""
    long = copy.deepcopy(raw)
    long["compress"]["max_minutes_per_fit"] = 2.0
    long["compress"]["cells"] = [
        {
            "name": "prune-long",
            "steps": [{"method": "prune", "amount": 0.5, "steps": 1, "finetune_epochs": 50}],
        }
    ]
    cfg = tmp_path / "long.yaml"
    cfg.write_text(yaml.safe_dump(long))
    cells = tmp_path / "work" / "candidates"
    built = set(cells.iterdir())
    teachers = set((tmp_path / "work" / "teachers").iterdir())
    run = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 300
        while not set(cells.iterdir()) - built:  # the new cell is being built
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the run never reached the compress stage"
            time.sleep(0.5)
        d = _wxc("down", env=env)
        assert d.returncode == 0 and "stopped" in d.stdout, d.stdout + d.stderr
        stopped = time.monotonic()
        out, err = run.communicate(timeout=180)
        took = time.monotonic() - stopped
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, err
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines[-1].startswith("error: the Prefect server"), err
    assert took < 60, f"took {took:.0f} s to notice"
    # the stack's teacher was reused, and is still there for the next run
    assert set((tmp_path / "work" / "teachers").iterdir()) == teachers
    assert (tmp_path / "work" / "latest" / "train.json").exists()
