"""The deployable pack: exact round trip, real shrinkage of sparse and shared weights, runs in
onnxruntime, and refuses damage."""

import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wxmodels.export.onnx import ort_session
from wxmodels.export.packing import PackError, pack_onnx, unpack_onnx


def _model(path, weights: np.ndarray):
    """y = x @ W (a MatMul with one initializer)."""
    n, m = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("kind", ["dense", "sparse", "shared"])
def test_round_trip_is_exact_and_runs(tmp_path, kind):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(128, 64)).astype(np.float32)
    if kind == "sparse":
        w[rng.random(w.shape) < 0.8] = 0.0
        w[0, :4] = -0.0  # signed zeros survive
    if kind == "shared":
        w = rng.choice(np.array([-0.5, -0.0, 0.25, 1.0], np.float32), size=w.shape)
    src = _model(tmp_path / "m.onnx", w)
    rep = pack_onnx(src, tmp_path / "m.wxpack")
    assert unpack_onnx(tmp_path / "m.wxpack") == src.read_bytes()
    enc = {"dense": "raw", "sparse": "sparse", "shared": "codebook"}[kind]
    assert rep["encodings"] == {enc: 1}
    if kind == "sparse":  # mask (1 bit) + 20 % of the values: well under half
        assert rep["bytes"] < 0.4 * rep["onnx_bytes"]
    if kind == "shared":  # 2-bit indices: about a sixteenth
        assert rep["bytes"] < 0.1 * rep["onnx_bytes"]
    x = rng.normal(size=(1, 128)).astype(np.float32)
    a = ort_session(src).run(None, {"x": x})[0]
    b = ort_session(tmp_path / "m.wxpack").run(None, {"x": x})[0]
    np.testing.assert_array_equal(a, b)
    # the same model packs to the same bytes (no timestamps)
    pack_onnx(src, tmp_path / "again.wxpack")
    assert (tmp_path / "again.wxpack").read_bytes() == (tmp_path / "m.wxpack").read_bytes()


def test_damaged_or_tampered_packs_are_refused(tmp_path):
    w = np.arange(128 * 64, dtype=np.float32).reshape(128, 64)
    src = _model(tmp_path / "m.onnx", w)
    pack_onnx(src, tmp_path / "m.wxpack")
    raw = (tmp_path / "m.wxpack").read_bytes()
    (tmp_path / "cut.wxpack").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PackError, match="damaged"):
        unpack_onnx(tmp_path / "cut.wxpack")
    # a payload replaced by other numbers of the same size: the sha256 check catches it
    with zipfile.ZipFile(tmp_path / "m.wxpack") as z:
        members = {n: z.read(n) for n in z.namelist()}
    key = next(n for n in members if n not in ("manifest.json", "graph.onnx"))
    members[key] = members[key][::-1]
    with zipfile.ZipFile(tmp_path / "evil.wxpack", "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    with pytest.raises(PackError, match="sha256"):
        unpack_onnx(tmp_path / "evil.wxpack")
    (tmp_path / "plain.wxpack").write_bytes(b"not a zip")
    with pytest.raises(PackError):
        unpack_onnx(tmp_path / "plain.wxpack")
