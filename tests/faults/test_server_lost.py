"""Item 6 of the fault suite: the Prefect server stopped (`wxc down`) under a running `wxc run`
ends the command within seconds, with one line and exit code 3, and keeps what was finished."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.factories import tiny_cycle_config

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _wxc(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )


def test_server_stopped_mid_run_fails_fast_in_one_line(tmp_path):
    from infra.s3.swift import free_port

    cfg = tmp_path / "cycle.yaml"
    raw = tiny_cycle_config(tmp_path)
    raw["compress"]["max_minutes_per_fit"] = 2.0  # a compress stage long enough to be caught in
    raw["compress"]["cells"][0]["steps"][0]["finetune_epochs"] = 50
    cfg.write_text(yaml.safe_dump(raw))
    env = {
        **os.environ,
        "WXC_HOME": str(tmp_path / "home"),
        "WXC_PREFECT_PORT": str(free_port()),
    }
    env.pop("PREFECT_API_URL", None)
    r = _wxc("up", "--deployments", "", env=env)
    assert r.returncode == 0, r.stderr
    run = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        latest = tmp_path / "work" / "latest" / "train.json"
        cells = tmp_path / "work" / "candidates"
        deadline = time.monotonic() + 600
        while not (cells.exists() and any(cells.iterdir())):  # cells are being built
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the cycle never reached the compress stage"
            time.sleep(0.5)
        r = _wxc("down", env=env)
        assert r.returncode == 0, r.stderr
        stopped = time.monotonic()
        out, err = run.communicate(timeout=180)
        took = time.monotonic() - stopped
    finally:
        if run.poll() is None:
            run.kill()
        _wxc("down", env=env)
    assert run.returncode == 3, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert "Traceback" not in err, err
    assert lines[-1].startswith("error: the Prefect server"), err
    assert took < 60, f"took {took:.0f} s to notice"
    assert latest.exists()  # the trained teacher is kept for the next run
