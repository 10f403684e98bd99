"""Item 8 of the fault suite: every mistake a user can type is one line and a non-zero exit,
before any work; absurd values are refused by the config models; property-based tests for
overrides and registry references (Hypothesis)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wxmodels.config.cycle import CycleConfig, load_config
from wxmodels.errors import ConfigError, RegistryError
from wxmodels.registry import Registry, parse_ref

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo.yaml"


def _wxc(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def _one_error_line(r) -> str:
    assert r.returncode != 0, r.stdout
    return _one_line(r.returncode, r.stderr)


def _one_line(code: int, stderr: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert lines[-1].startswith("error:"), stderr
    return lines[-1]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train", "-c", str(DEMO), "--set", "name.x=1"], "is a value"),
        (["train", "-c", "/bin/ls"], "not a text (YAML) file"),
        (["train", "-c", "configs"], "is a directory"),
        (["train", "-c", str(DEMO), "--set", "train.lr=.inf"], "train.lr"),
        (["train", "-c", str(DEMO), "--set", "compress.cells.-1.name=x"], "not an index"),
        (["ingest", "-c", str(DEMO), "--set", "data.source.days=100000000"], "days"),
        (["predict", "--model", "m@edge", "--start", "garbage", "--out", "x.nc"], "ISO 8601"),
        (
            [
                "predict",
                "--model",
                "m@e",
                "--start",
                "2024-01-01",
                "--input",
                "/nonexistent",
                "--out",
                "x.nc",
            ],
            "/nonexistent does not exist",
        ),
        (
            ["predict", "--model", "m@e", "--start", "2024-01-01", "--out", "/proc/wxc/fc.nc"],
            "cannot write into /proc/wxc",
        ),
    ],
    ids=[
        "set-into-value",
        "binary-config",
        "directory-config",
        "inf-lr",
        "negative-index",
        "absurd-days",
        "garbage-start",
        "missing-input",
        "unwritable-out",
    ],
)
def test_typed_mistakes_are_one_line(args, says, wxc_main):
    assert says in _one_line(*wxc_main(*args))


def test_the_installed_command_says_one_line_too():
    """The same path through the real entry point, in a process of its own."""
    r = _wxc("train", "-c", str(DEMO), "--set", "train.lr=.inf")
    assert "train.lr" in _one_error_line(r)


def test_pull_destinations_from_the_cli(tmp_path, wxc_main, monkeypatch):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"m" * 64)
    reg = Registry(str(tmp_path / "registry"))
    v = reg.publish("demo", {"model.onnx": f}, {})
    afile = tmp_path / "a-file"
    afile.write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    monkeypatch.setenv("WXC_CACHE", str(tmp_path / "cache"))
    for dest, says in ((afile, "is a file"), ("/dev/null", "is a file"), (link, "symbolic link")):
        out = wxc_main("registry", "pull", f"demo@{v}", str(dest), "--registry", reg.url)
        assert says in _one_line(*out)
    assert afile.read_text() == "mine"


# -- properties --------------------------------------------------------------------------
_KEYS = st.lists(
    st.sampled_from(
        [
            "name",
            "data",
            "train",
            "lr",
            "compress",
            "cells",
            "0",
            "-1",
            "7",
            "steps",
            "x",
            "epochs",
            "source",
            "days",
            "net",
            "width",
            "",
            "evaluate",
            "leads_h",
        ]
    ),
    min_size=1,
    max_size=4,
).map(".".join)
_VALUES = st.one_of(
    st.sampled_from(
        [
            ".inf",
            "-.inf",
            ".nan",
            "1e400",
            "-1",
            "0",
            "100000000",
            "[]",
            "{}",
            "null",
            "x",
            "[1, 2]",
            "{a: 1}",
            "!!python/object:os.system ls",
            "'",
        ]
    ),
    st.text(max_size=12),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=_KEYS, value=_VALUES)
def test_any_override_gives_a_config_or_one_config_error(key, value):
    try:
        cfg = load_config(DEMO, [f"{key}={value}"])
    except ConfigError as e:
        message = str(e)
        cfg = None
    if cfg is None:
        assert "\n" not in message
        return
    assert isinstance(cfg, CycleConfig)
    assert 0 < cfg.train.lr <= 10 and cfg.data.source.days <= 3660


@settings(max_examples=200, deadline=None)
@given(ref=st.text(max_size=40))
def test_any_reference_parses_or_is_refused_and_never_leaves_the_registry(ref, tmp_path_factory):
    root = tmp_path_factory.mktemp("reg")
    reg = Registry(str(root / "registry"))
    try:
        name, tag = parse_ref(ref)
        path = reg._vdir(name, tag)
    except RegistryError:
        return
    resolved = os.path.realpath(path)
    assert resolved.startswith(os.path.realpath(root / "registry") + os.sep), (ref, path)
    with pytest.raises(RegistryError):
        reg.resolve(ref)  # an empty registry resolves nothing, whatever the reference
