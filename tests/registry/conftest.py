"""Registry fixtures: the same tests run against every backend listed here."""

import pytest

from wxmodels.registry import Registry


@pytest.fixture(params=["local"])
def registry(request, tmp_path):
    if request.param == "local":
        return Registry(str(tmp_path / "registry"))
    raise NotImplementedError(request.param)


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"\x08\x01onnx-bytes" * 100)
    (d / "card.md").write_text("# card\n")
    return {"model.onnx": d / "model.onnx", "card.md": d / "card.md"}
