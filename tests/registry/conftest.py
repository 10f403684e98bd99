"""Registry fixtures: the same tests run against every backend listed here (a local
directory, and a bucket on the suite's real S3-compatible server)."""

import pytest

from wxmodels.registry import Registry


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def registry(request, tmp_path, monkeypatch):
    monkeypatch.setenv("WXC_CACHE", str(tmp_path / "cache"))  # a fresh cache per test
    if request.param == "local":
        return Registry(str(tmp_path / "registry"))
    s3 = request.getfixturevalue("s3_server")
    return Registry(f"s3://{s3.bucket()}/registry", dict(s3.storage_options))


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"\x08\x01onnx-bytes" * 100)
    (d / "card.md").write_text("# card\n")
    return {"model.onnx": d / "model.onnx", "card.md": d / "card.md"}


def stored(registry, name, version, fname):
    """The object path of a published file, on any backend."""
    return f"{registry._vdir(name, version)}/{fname}"
