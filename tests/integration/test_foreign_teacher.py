"""An ONNX-only teacher (``teacher.onnx``): a forecaster the test builds in plain torch, exports
with its own tensor names and no time input, and then treats as foreign (only the ``.onnx``
file reaches the pipeline). The cycle registers it (digest checked, signature adapted, contract
checked on the store), int8 and dynamic quantization act on the file itself, a torch student is
distilled from its onnxruntime forecasts, and the registry records its digest and contract."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from tests.factories import SYN_VARS, tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.config.teacher import ForeignTeacherConfig
from wxmodels.errors import ConfigError, DataError
from wxmodels.pipeline.foreign import adapt_signature
from wxmodels.pipeline.records import CellRecord, TeacherRecord
from wxmodels.registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Extrapolator(nn.Module):
    """Someone else's forecaster: linear extrapolation of the last two states plus a small
    conv correction, on ``x`` (batch, 2, V, H, W) in physical units; returns ``y``."""

    def __init__(self, nv: int):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(2 * nv, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, nv, 1),
        )
        self.scale = nn.Parameter(torch.full((1, nv, 1, 1), 0.01))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last, prev = x[:, -1], x[:, -2]
        b, h, v, ny, nx = x.shape
        z = (x - x.mean(dim=(3, 4), keepdim=True)).reshape(b, h * v, ny, nx)
        return last + 0.3 * (last - prev) + self.scale * self.net(z)


def export_foreign(path: Path, nv: int = len(SYN_VARS)) -> str:
    model = Extrapolator(nv).eval()
    x = torch.randn(1, 2, nv, 8, 12) + 280.0
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config(tmp: Path, onnx_path: Path, sha: str | None, **contract) -> dict:
    raw = tiny_cycle_config(tmp)
    raw["teacher"] = {
        "onnx": str(onnx_path),
        "sha256": sha,
        "variables": SYN_VARS,
        "history": 2,
        "step_hours": 1.0,
        "state_input": "x",
        "output": "y",
        **contract,
    }
    raw["compress"]["cells"] = [
        {"name": "int8", "steps": [{"method": "int8", "calibration_samples": 8}]},
        {"name": "dynamic", "steps": [{"method": "dynamic"}]},
        {
            "name": "student",
            "steps": [{"method": "distill", "width": 4, "depth": 1, "epochs": 2, "alpha": 0.0}],
        },
    ]
    return raw


@pytest.fixture(scope="module")
def foreign_run(prefect_server, dask_cluster, tmp_path_factory):
    from flows.cycle import cycle_flow

    tmp = tmp_path_factory.mktemp("foreign")
    path = tmp / "someone-elses-model.onnx"
    sha = export_foreign(path)
    cfg = CycleConfig.model_validate(_config(tmp, path, sha))
    return tmp, cfg, sha, cycle_flow(cfg)


def test_the_foreign_file_is_the_teacher_and_its_cells_are_built(foreign_run):
    tmp, cfg, sha, rep = foreign_run
    names = {c["name"] for c in rep["candidates"]}
    assert names == {"int8", "dynamic", "student"}, rep["failures"]
    path = next((tmp / "work" / "teachers").glob("*/teacher.json"))
    teacher = TeacherRecord.load(path).model_dump()
    assert teacher["foreign"]["sha256"] == sha and teacher["net"]["arch"] == "onnx"
    tdir = Path(teacher["dir"])
    assert not (tdir / "torch").exists()  # no torch code or weights were ever made for it
    graph = onnx.load(str(tdir / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["state", "time"]
    assert [o.name for o in graph.output] == ["next"]
    # the quantized cells are the foreign file quantized: same parameters, int8 inside
    cells = {c["name"]: c for c in rep["candidates"]}
    assert cells["int8"]["params"] == teacher["params"]
    for c in rep["candidates"]:
        for v in cfg.data.variables:
            assert all(np.isfinite(x) for x in c["rmse"][v].values())


def test_students_learn_from_the_file_s_own_forecasts(foreign_run):
    """What distillation trains against is what onnxruntime makes of the original file (the
    foreign teacher as torch sees it), and the student is a torch model of the project's."""
    import onnxruntime as ort

    from wxmodels.pipeline.context import load_run_data, load_teacher

    tmp, cfg, _, rep = foreign_run
    tdir = next((tmp / "work" / "teachers").glob("t-*"))
    teacher, _ = load_teacher(tdir)
    run = load_run_data(cfg)
    f = run.fields
    idx = run.split.inits(f, "train", history=2, lead_steps=1)[:5]
    state = np.stack([f.data[i - 1 : i + 1] for i in idx]).astype(np.float32)
    with torch.no_grad():
        got = teacher(torch.from_numpy(state), torch.from_numpy(f.hours[idx])).numpy()
    sess = ort.InferenceSession(str(tmp / "someone-elses-model.onnx"))
    np.testing.assert_array_equal(got, sess.run(["y"], {"x": state})[0])
    cells = [CellRecord.load(p) for p in (tmp / "work" / "candidates").glob("c-*/cell.json")]
    student = next(c for c in cells if c.name == "student")
    assert (Path(student.dir) / "torch" / "model.safetensors").exists()
    assert student.teacher == tdir.name


def test_the_registry_records_the_digest_and_contract(foreign_run):
    tmp, cfg, sha, _ = foreign_run
    reg = Registry(str(tmp / "registry"))
    man = reg.manifest("tiny@teacher")
    assert man["architecture"]["family"] == "foreign" and man["architecture"]["sha256"] == sha
    assert man["lineage"]["teacher_onnx"]["sha256"] == sha
    assert man["lineage"]["teacher_onnx"]["contract"]["state_input"] == "x"
    assert man["runtimes"] == ["onnx"] and "model.safetensors" not in man["files"]
    edge = reg.manifest("tiny@edge")
    assert edge["lineage"]["teacher_onnx"]["sha256"] == sha


def test_a_tampered_file_is_refused_and_nothing_is_built(tmp_path, prefect_server):
    from wxmodels.pipeline.teacher import train_teacher

    path = tmp_path / "m.onnx"
    sha = export_foreign(path)
    raw = _config(tmp_path, path, sha)
    cfg = CycleConfig.model_validate(raw)
    from wxmodels.data.ingest import ingest

    ingest(cfg.data)
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="not the declared"):
        train_teacher(cfg)
    assert not [p for p in (tmp_path / "work" / "teachers").iterdir() if not p.name.startswith(".")]
    # a contract the file does not keep: three states declared, it takes two
    bad = CycleConfig.model_validate(_config(tmp_path, path, None, history=3))
    path.write_bytes(bytes(blob[:-5]) + bytes([blob[-5] ^ 0xFF]) + bytes(blob[-4:]))
    with pytest.raises(DataError, match="does not run on the declared input"):
        train_teacher(bad)
    swapped = copy.deepcopy(raw)
    swapped["teacher"]["variables"] = SYN_VARS[::-1]
    with pytest.raises(ConfigError, match="same order"):
        train_teacher(CycleConfig.model_validate(swapped))


def test_signature_adaptation_refuses_what_it_cannot_map(tmp_path):
    path = tmp_path / "m.onnx"
    export_foreign(path)
    fc = ForeignTeacherConfig(
        onnx=str(path), variables=SYN_VARS, history=2, step_hours=1, state_input="input"
    )
    with pytest.raises(DataError, match="no input 'input'"):
        adapt_signature(path, tmp_path / "a.onnx", fc)
    with pytest.raises(ValueError, match="64 hexadecimal"):
        ForeignTeacherConfig(onnx="x", variables=SYN_VARS, step_hours=1, sha256="abc")
    with pytest.raises(ValueError, match="unknown canonical variable"):
        ForeignTeacherConfig(onnx="x", variables=["t2m"], step_hours=1)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a readable ONNX model"):
        adapt_signature(tmp_path / "junk.onnx", tmp_path / "b.onnx", fc)
