"""Registry behaviour, identical for every backend (see conftest)."""

import json

import pytest

from wxmodels.errors import ChecksumError, RegistryError
from wxmodels.registry import parse_ref


def test_publish_pull_verifies(registry, files, tmp_path):
    v = registry.publish("demo", files, {"kind": "candidate"})
    man = registry.manifest(f"demo@{v}")
    assert set(man["files"]) == {"model.onnx", "card.md"}
    assert man["kind"] == "candidate" and man["version"] == v
    dest = registry.pull(f"demo@{v}", tmp_path / "out")
    assert (dest / "model.onnx").read_bytes() == files["model.onnx"].read_bytes()
    assert json.loads((dest / "manifest.json").read_text())["version"] == v


def test_same_content_same_version_and_immutability(registry, files, tmp_path):
    v1 = registry.publish("demo", files, {"kind": "candidate"})
    assert registry.publish("demo", files, {"kind": "candidate"}) == v1  # a retry is a no-op
    files["card.md"].write_text("# other\n")
    v2 = registry.publish("demo", files, {})
    assert v2 != v1
    with pytest.raises(RegistryError, match="immutable"):
        registry.publish("demo", files, {}, version=v1)
    assert [m["version"] for m in registry.versions("demo")] == [v1, v2]


def test_aliases_history_and_rollback(registry, files):
    v1 = registry.publish("demo", files, {})
    files["card.md"].write_text("v2")
    v2 = registry.publish("demo", files, {})
    registry.set_alias("demo", "edge", v1, reason="first")
    registry.set_alias("demo", "edge", v2, reason="better")
    assert registry.resolve("demo@edge") == ("demo", v2)
    ev = registry.rollback("demo", "edge")
    assert (ev.version, ev.previous) == (v1, v2)
    assert [e.version for e in registry.history("demo", "edge")] == [v1, v2, v1]
    assert registry.aliases("demo") == {"edge": v1}
    with pytest.raises(RegistryError, match="does not exist"):
        registry.set_alias("demo", "edge", "deadbeef0000")


def test_tampered_or_truncated_file_fails_the_pull(registry, files, tmp_path):
    v = registry.publish("demo", files, {})
    stored = tmp_path / "registry" / "demo" / "versions" / v / "model.onnx"
    stored.write_bytes(stored.read_bytes()[:-1] + b"X")
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        registry.pull(f"demo@{v}", tmp_path / "out")
    assert not (tmp_path / "out" / "model.onnx").exists()
    stored.write_bytes(b"short")
    with pytest.raises(ChecksumError):
        registry.pull(f"demo@{v}", tmp_path / "out2")


def test_version_without_manifest_is_invisible(registry, files, tmp_path):
    half = tmp_path / "registry" / "demo" / "versions" / "abcdef123456"
    half.mkdir(parents=True)
    (half / "model.onnx").write_bytes(b"half-uploaded")
    assert registry.versions("demo") == []
    with pytest.raises(RegistryError, match="no such alias or version"):
        registry.resolve("demo@abcdef123456")


@pytest.mark.parametrize("bad", ["../../etc", "Demo", "a/b", "", ".hidden", "x" * 80, "a b"])
def test_malicious_names_are_rejected(registry, files, bad):
    with pytest.raises(RegistryError):
        registry.publish(bad, files, {})
    with pytest.raises(RegistryError):
        parse_ref(f"{bad}@edge")


def test_malicious_file_names_and_aliases(registry, files):
    with pytest.raises(RegistryError):
        registry.publish("demo", {"../evil.onnx": files["model.onnx"]}, {})
    v = registry.publish("demo", files, {})
    with pytest.raises(RegistryError):
        registry.set_alias("demo", "../../edge", v)
    with pytest.raises(RegistryError):
        registry.resolve("demo@../../x")
