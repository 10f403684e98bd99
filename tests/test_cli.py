"""The CLI: one clear error line (no traceback wall), non-zero exit, nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _wxc(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        cwd=cwd or REPO,
    )


def _one_error_line(r):
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert "Traceback" not in r.stderr
    assert lines[-1].startswith("error:")
    return lines[-1]


def test_help_lists_the_commands():
    r = _wxc("--help")
    assert r.returncode == 0
    for cmd in (
        "ingest",
        "train",
        "compress",
        "evaluate",
        "promote",
        "run",
        "predict",
        "registry",
        "up",
        "down",
    ):
        assert cmd in r.stdout


def test_config_typo(tmp_path):
    r = _wxc("run", "-c", "configs/demo.yaml", "-s", "train.epoch=3")
    assert "did you mean 'epochs'" in _one_error_line(r)


def test_missing_config():
    r = _wxc("ingest", "-c", "configs/nope.yaml")
    assert "does not exist" in _one_error_line(r)


def test_registry_errors(tmp_path):
    r = _wxc(
        "registry",
        "pull",
        "../../etc@edge",
        str(tmp_path / "x"),
        "--registry",
        str(tmp_path / "reg"),
    )
    assert "invalid model name" in _one_error_line(r)
    r = _wxc("registry", "show", "demo@edge", "--registry", str(tmp_path / "reg"))
    assert "no such alias or version" in _one_error_line(r)


@pytest.mark.integration
def test_missing_input_files_leave_the_store_alone(tmp_path, prefect_server):
    store = tmp_path / "store.zarr"
    r = _wxc(
        "ingest",
        "-c",
        "configs/wfde5-uk.yaml",
        "-s",
        f'data.source.paths=["{tmp_path}/none/*.nc"]',
        "-s",
        f"data.store={store}",
        "-s",
        f"workdir={tmp_path}/w",
    )
    assert "no input files match" in _one_error_line(r)
    from wxmodels.data.store import Store

    # nothing committed; the path holds only the store's marker and lock (claimed for it)
    assert not Store(str(store)).exists()
    assert not store.exists() or sorted(p.name for p in store.iterdir()) == ["_wxc"]


@pytest.mark.integration
def test_nan_only_input_is_refused(tmp_path, prefect_server):
    import numpy as np
    import pandas as pd
    import xarray as xr

    d = tmp_path / "in"
    d.mkdir()
    t = pd.date_range("2020-01-01", periods=6, freq="h")
    xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), np.full((6, 3, 4), np.nan), {"units": "K"})},
        coords={"time": t, "latitude": [1.0, 2.0, 3.0], "longitude": [0.0, 1, 2, 3]},
    ).to_netcdf(d / "a.nc")
    store = tmp_path / "store.zarr"
    r = _wxc(
        "ingest",
        "-c",
        "configs/wfde5-uk.yaml",
        "-s",
        f'data.source.paths=["{d}/*.nc"]',
        "-s",
        "data.variables=[2m_temperature]",
        "-s",
        f"data.store={store}",
        "-s",
        f"workdir={tmp_path}/w",
    )
    line = _one_error_line(r)
    assert "NaN everywhere" in line
    from wxmodels.data.store import Store

    assert not Store(str(store)).exists()
    assert sorted(p.name for p in store.iterdir()) == ["_wxc"]  # marker and lock, no data
