"""The Prefect UI shows a run and its table artifact, waited for (not raced): a quick twin of
the UI part of ``test_deployments.py``, cheap enough to run many times under load
(``pytest -m twin``; the default run has the full test)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.integration.ui import chromium, ui_shows

pytestmark = [pytest.mark.integration, pytest.mark.twin]


def test_ui_shows_a_flow_run_and_its_artifact(tmp_path):
    from prefect import flow
    from prefect.artifacts import create_table_artifact
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from infra.s3.swift import free_port

    chromium()  # skips with the reason when there is no browser
    port = free_port()
    env = {**os.environ, "WXC_HOME": str(tmp_path / "home"), "WXC_PREFECT_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)
    url = f"http://127.0.0.1:{port}/api"

    def wxc(*args):
        return subprocess.run(
            [sys.executable, "-m", "flows.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    r = wxc("up", "--deployments", "")
    assert r.returncode == 0, r.stderr
    tag = uuid.uuid4().hex[:8]
    key = f"scorecard-{tag}"

    @flow(name=f"ui-probe-{tag}")
    def probe() -> None:
        create_table_artifact(key=key, table=[{"model": "teacher", "rmse": 1.0}])

    try:
        with temporary_settings({PREFECT_API_URL: url}):
            probe()
        ui_shows(
            url.removesuffix("/api"),
            runs=[f"ui-probe-{tag}"],
            artifacts=[key],
            screenshot=tmp_path / "runs.png",
        )
        assert (tmp_path / "runs.png").stat().st_size > 10_000
    finally:
        wxc("down")
