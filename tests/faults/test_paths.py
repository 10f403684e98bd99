"""Item 2 of the fault suite: no path ever deletes a user's files. A store, registry, cache,
pull destination or forecast is written only into a path that is absent, empty or this
project's own; an unset variable in a path is an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.factories import canonical_dataset
from wxmodels.config.cycle import load_config
from wxmodels.data.store import Store
from wxmodels.errors import ConfigError, PathError
from wxmodels.predict import write_forecast
from wxmodels.registry import Cache, Registry

REPO = Path(__file__).resolve().parents[2]


def _user_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "results.csv").write_text("a,b\n1,2\n")
    return path


def test_store_in_a_user_directory_is_refused_and_nothing_removed(tmp_path):
    d = _user_dir(tmp_path / "some" / "dir")
    with pytest.raises(PathError, match="not a wxcompress store"):
        Store(str(d)).append(canonical_dataset(nt=24))
    assert sorted(p.name for p in d.iterdir()) == ["results.csv"]
    assert (d / "results.csv").read_text() == "a,b\n1,2\n"


def test_cli_store_dot_dot_is_refused(tmp_path, wxc_main, monkeypatch, prefect_server):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "keep.txt").write_text("x")
    monkeypatch.chdir(checkout)
    code, err = wxc_main(
        "ingest",
        "-c",
        str(REPO / "configs/demo.yaml"),
        "-s",
        "data.store=..",
        "-s",
        f"data.source.directory={tmp_path}/landing",
        "-s",
        f"workdir={tmp_path}/w",
    )
    assert code == 2 and "is not a wxcompress store" in err.splitlines()[-1], err
    assert (checkout / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkout"]


def test_unset_variable_in_a_path_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WXC_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="WXC_NOT_SET is not set"):
        load_config(REPO / "configs/demo.yaml", ["data.store=${WXC_NOT_SET}/store.zarr"])
    with pytest.raises(ConfigError, match="WXC_NOT_SET is not set"):
        load_config(REPO / "configs/demo.yaml", ["promote.registry=$WXC_NOT_SET"])
    monkeypatch.setenv("WXC_NOT_SET", str(tmp_path))
    cfg = load_config(REPO / "configs/demo.yaml", ["data.store=${WXC_NOT_SET}/s.zarr"])
    assert cfg.data.store == f"{tmp_path}/s.zarr"


def test_debris_of_a_first_write_is_cleared_only_inside_the_claimed_store(tmp_path):
    s = Store(str(tmp_path / "s.zarr"))
    s.append(canonical_dataset(nt=24))
    commit = tmp_path / "s.zarr" / "_wxc" / "zarr.json"
    # a first write that crashed before its commit: the marker (no commit), arrays
    commit.write_text(commit.read_text().replace('"wxc_commit"', '"wxc_was"'))
    assert not s.exists()
    rep = Store(str(tmp_path / "s.zarr")).append(canonical_dataset(nt=48))
    assert rep.appended == 48 and s.read_commit().n_time == 48


def test_registry_and_cache_in_user_directories_are_refused(tmp_path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"m" * 100)
    d = _user_dir(tmp_path / "reg")
    with pytest.raises(PathError, match="not a wxcompress registry"):
        Registry(str(d)).publish("demo", {"model.onnx": f}, {})
    assert sorted(p.name for p in d.iterdir()) == ["results.csv"]
    reg = Registry(str(tmp_path / "registry"))
    reg.publish("demo", {"model.onnx": f}, {})
    c = _user_dir(tmp_path / "cache")
    with pytest.raises(PathError, match="not a wxcompress model cache"):
        reg.pull("demo@" + reg.versions("demo")[0]["version"], cache=Cache(c))
    assert sorted(p.name for p in c.iterdir()) == ["results.csv"]


def test_pull_destinations(tmp_path):
    reg = Registry(str(tmp_path / "registry"))
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"a" * 100)
    b.write_bytes(b"b" * 100)
    va = reg.publish("demo", {"model.onnx": a, "extra.txt": a}, {})
    vb = reg.publish("demo", {"model.onnx": b}, {})
    afile = tmp_path / "a-file"
    afile.write_text("mine")
    for bad in (afile, Path("/dev/null")):
        with pytest.raises(PathError, match="is a file"):
            reg.pull(f"demo@{va}", bad)
    assert afile.read_text() == "mine"
    target = _user_dir(tmp_path / "elsewhere")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(PathError, match="symbolic link"):
        reg.pull(f"demo@{va}", link)
    with pytest.raises(PathError, match="not a wxcompress pull destination"):
        reg.pull(f"demo@{va}", target)
    assert sorted(p.name for p in target.iterdir()) == ["results.csv"]
    dest = tmp_path / "deploy"
    reg.pull(f"demo@{va}", dest)
    assert (dest / "extra.txt").exists()
    reg.pull(f"demo@{vb}", dest)  # the same destination, another version: nothing stale stays
    names = sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))
    assert names == ["manifest.json", "model.onnx"]
    assert (dest / "model.onnx").read_bytes() == b"b" * 100


def _forecast() -> xr.Dataset:
    return xr.Dataset({"t": (("x",), np.arange(3.0))})


def test_forecast_output_is_never_written_over_user_files(tmp_path):
    thesis = _user_dir(tmp_path / "thesis")
    (thesis / "thesis.tex").write_text("\\chapter{}")
    for overwrite in (False, True):
        with pytest.raises(PathError):
            write_forecast(_forecast(), thesis, overwrite=overwrite)
    assert (thesis / "thesis.tex").read_text() == "\\chapter{}"
    nc = tmp_path / "notes.nc"
    xr.Dataset({"x": (("a",), [1.0])}).to_netcdf(nc)  # someone else's NetCDF
    with pytest.raises(PathError, match="not a forecast written by wxcompress"):
        write_forecast(_forecast(), nc, overwrite=True)
    out = tmp_path / "fc.zarr"
    write_forecast(_forecast(), out)
    with pytest.raises(PathError, match="--overwrite"):
        write_forecast(_forecast(), out)
    write_forecast(_forecast() * 2, out, overwrite=True)  # our own forecast: replaced
    assert xr.open_zarr(out, consolidated=False)["t"].values.tolist() == [0.0, 2.0, 4.0]


def test_cli_predict_refuses_a_user_directory_before_any_work(tmp_path, wxc_main):
    thesis = _user_dir(tmp_path / "thesis")
    args = ["predict", "--model", "demo@edge", "--start", "2024-01-21T12:00"]
    args += ["--out", str(thesis), "--registry", str(tmp_path / "no-registry")]
    code, err = wxc_main(*args)
    assert code == 2 and "pass --overwrite" in err and "Traceback" not in err
    code, err = wxc_main(*args, "--overwrite")
    assert code == 2 and "not a forecast written by wxcompress" in err
    assert sorted(p.name for p in thesis.iterdir()) == ["results.csv"]
