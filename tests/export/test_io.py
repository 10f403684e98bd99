"""The channel order lives in the model: ONNX metadata, model.json, the manifest agree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.factories import make_fields, net_spec
from wxmodels.errors import DataError
from wxmodels.export.io import ModelIO, read_io
from wxmodels.export.onnx import OrtForecaster, export_onnx
from wxmodels.nets import Forecaster, save_forecaster


@pytest.fixture
def exported(tmp_path):
    f = make_fields(nt=50)
    spec = net_spec(f)
    spec.variables = ["2m_temperature", "2m_dewpoint_temperature"]  # not sorted
    model = Forecaster(spec, valid=f.valid)
    save_forecaster(model, tmp_path / "torch")
    return model, export_onnx(model, tmp_path / "model.onnx")


def test_onnx_file_carries_the_channel_order(exported):
    model, path = exported
    io = read_io(path.parent)
    assert io.variables == ("2m_temperature", "2m_dewpoint_temperature")
    assert io.units == ("K", "K") and io.history == 2 and io.shape == model.spec.grid
    assert OrtForecaster(path).variables == list(io.variables)
    assert ModelIO.from_json(io.to_json()) == io


def test_manifest_that_disagrees_with_the_model_is_refused(exported):
    _, path = exported
    io = read_io(path.parent)
    good = {"signature": {"variables": io.manifest_variables()}}
    io.check_manifest(good, "m@1")
    swapped = {"signature": {"variables": list(reversed(io.manifest_variables()))}}
    with pytest.raises(DataError, match="refusing to run it"):
        io.check_manifest(swapped, "m@1")


def test_model_without_metadata_falls_back_to_its_spec(exported, tmp_path):
    import onnx

    model, path = exported
    m = onnx.load(str(path))
    del m.metadata_props[:]
    onnx.save(m, str(path))
    spec = json.loads((path.parent / "torch" / "model.json").read_text())
    assert read_io(path.parent).variables == tuple(spec["_data"]["variables"])
    out = OrtForecaster(path)(
        np.zeros((1, 2, 2, *model.spec.grid), np.float32) + 280, np.array([4.7e5], np.float32)
    )
    assert out.shape == (1, 2, *model.spec.grid)
