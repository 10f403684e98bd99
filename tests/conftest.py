"""Shared fixtures: real data location, the Prefect test harness, tiny configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("WXC_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$WXC_DATA_DIR``); the test is skipped when it is absent."""
    d = shared_data_dir()
    if not (d / "wfde5_uk_2017-01").is_dir():
        pytest.skip(f"real data not found at {d} (set WXC_DATA_DIR to the shared data folder)")
    return d


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server (SQLite) for the session; its URL is exported to the
    environment too, so that Dask worker processes report to it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    old = os.environ.get("PREFECT_API_URL")
    with prefect_test_harness(server_startup_timeout=60):
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        yield PREFECT_API_URL.value()
    if old is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = old
