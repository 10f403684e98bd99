"""Registry behaviour, identical for every backend (see conftest)."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.registry.conftest import stored
from wxmodels.errors import ChecksumError, RegistryError
from wxmodels.registry import Cache, Registry, parse_ref


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
    path = stored(registry, "demo", v, "model.onnx")
    registry.fs.pipe_file(path, files["model.onnx"].read_bytes()[:-1] + b"X")
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        registry.pull(f"demo@{v}", tmp_path / "out")
    assert not (tmp_path / "out" / "model.onnx").exists()
    registry.fs.pipe_file(path, b"short")
    with pytest.raises(ChecksumError):
        registry.pull(f"demo@{v}", tmp_path / "out2")
    registry.fs.rm_file(path)
    with pytest.raises(ChecksumError, match="missing from the registry"):
        registry.pull(f"demo@{v}", tmp_path / "out3")


def test_version_without_manifest_is_invisible_and_gc_removes_it(registry, files, tmp_path):
    v = registry.publish("demo", files, {})
    half = f"{registry._vdir('demo', 'abcdef123456')}"
    registry.fs.makedirs(half, exist_ok=True)
    registry.fs.pipe_file(f"{half}/model.onnx", b"half-uploaded")
    assert [m["version"] for m in registry.versions("demo")] == [v]
    with pytest.raises(RegistryError, match="no such alias or version"):
        registry.resolve("demo@abcdef123456")
    # a young orphan may be a publication in flight: kept
    assert registry.gc(older_than=3600) == []
    time.sleep(1.2)  # object stores keep modification times to the (rounded-up) second
    assert registry.gc(older_than=0, dry_run=True) == [half]
    assert registry.fs.exists(f"{half}/model.onnx")
    assert registry.gc(older_than=0) == [half]
    registry.fs.invalidate_cache()
    assert not registry.fs.exists(f"{half}/model.onnx")
    assert registry.pull(f"demo@{v}", tmp_path / "out").joinpath("model.onnx").exists()


def test_a_cached_version_is_not_downloaded_again(registry, files, tmp_path, monkeypatch):
    v = registry.publish("demo", files, {})
    registry.set_alias("demo", "edge", v)
    opened = []
    real_open = registry.fs.open

    def counting_open(path, *a, **k):
        opened.append(str(path).rsplit("/", 1)[-1])
        return real_open(path, *a, **k)

    monkeypatch.setattr(registry.fs, "open", counting_open)
    first = registry.pull("demo@edge")
    data = ("card.md", "model.onnx")  # besides: the manifest and the alias's events
    assert sorted(f for f in opened if f in data) == ["card.md", "model.onnx"]
    opened.clear()
    again = registry.pull("demo@edge")
    copy = registry.pull(f"demo@{v}", tmp_path / "copy")
    assert [f for f in opened if f in data] == []
    assert again == first and (copy / "model.onnx").read_bytes() == files["model.onnx"].read_bytes()
    assert first.parent.name == "demo" and first.name == v


def test_offline_pull_from_the_cache(registry, files, tmp_path, monkeypatch):
    v = registry.publish("demo", files, {})
    registry.set_alias("demo", "edge", v)
    with pytest.raises(RegistryError, match="not in the cache"):
        registry.pull("demo@edge", offline=True)
    registry.pull("demo@edge")

    def unreachable(*a, **k):
        raise ConnectionError("registry unreachable")

    for meth in ("open", "ls", "exists", "info", "find", "cat_file"):
        monkeypatch.setattr(registry.fs, meth, unreachable)
    with pytest.raises(ConnectionError):
        registry.pull("demo@edge", tmp_path / "online")
    for ref in ("demo@edge", f"demo@{v}"):
        out = registry.pull(ref, tmp_path / ref.replace("@", "-"), offline=True)
        assert (out / "model.onnx").read_bytes() == files["model.onnx"].read_bytes()
    with pytest.raises(RegistryError, match="not in the cache"):
        registry.pull("demo@hpc", offline=True)


def test_a_cached_file_changed_locally_is_caught(registry, files, tmp_path):
    v = registry.publish("demo", files, {})
    out = registry.pull(f"demo@{v}")
    blob = Cache().blob(registry.manifest(f"demo@{v}")["files"]["model.onnx"]["sha256"])
    assert (out / "model.onnx").samefile(blob)
    # a file replaced in the version's directory (a new inode) is put back from the blob
    (out / "model.onnx").unlink()
    (out / "model.onnx").write_bytes(b"edited")
    assert registry.pull(f"demo@{v}").joinpath("model.onnx").read_bytes() == (
        files["model.onnx"].read_bytes()
    )
    blob.chmod(0o644)
    blob.write_bytes(b"X" + blob.read_bytes()[1:])  # same size, other bytes
    with pytest.raises(ChecksumError, match=r"cached copy .* was modified"):
        registry.pull(f"demo@{v}", tmp_path / "x")
    # the bad copy is gone; an online pull fetches and verifies it again
    assert registry.pull(f"demo@{v}", tmp_path / "y").joinpath("model.onnx").read_bytes() == (
        files["model.onnx"].read_bytes()
    )


def test_racing_promotions_leave_intact_versions_and_one_history(registry, files, tmp_path):
    """Eight promotions publish their own version and move ``edge`` at the same time."""
    srcs = []
    for k in range(8):
        d = tmp_path / f"m{k}"
        d.mkdir()
        (d / "model.onnx").write_bytes(f"model {k}".encode() * 50)
        srcs.append({"model.onnx": d / "model.onnx"})

    def promote(k):
        v = registry.publish("demo", srcs[k], {"k": k})
        registry.set_alias("demo", "edge", v, reason=f"promotion {k}")
        return v

    with ThreadPoolExecutor(8) as ex:
        versions = list(ex.map(promote, range(8)))
    assert len(set(versions)) == 8
    assert sorted(m["version"] for m in registry.versions("demo")) == sorted(versions)
    hist = registry.history("demo", "edge")
    assert sorted(e.version for e in hist) == sorted(versions)
    assert registry.resolve("demo@edge") == ("demo", hist[-1].version)
    for v in versions:
        registry.pull(f"demo@{v}", tmp_path / "pulled" / v)  # every version verifies
    ev = registry.rollback("demo", "edge")
    assert ev.version == next(e.version for e in reversed(hist) if e.version != hist[-1].version)


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


@pytest.mark.s3
def test_s3_server_stopped_mid_publication(s3_server, files, tmp_path, monkeypatch):
    """The server dies after the first file of a promotion: nothing becomes visible; the
    retried promotion, once the server is back, completes the same version."""
    if s3_server.swift is None:
        pytest.skip("needs the Swift server of the suite (moto runs in-process)")
    monkeypatch.setenv("WXC_CACHE", str(tmp_path / "cache"))
    reg = Registry(f"s3://{s3_server.bucket()}/registry", dict(s3_server.storage_options))
    real_put = reg._put_file
    uploaded = []

    def put_then_die(src, path):
        real_put(src, path)
        uploaded.append(path)
        if len(uploaded) == 1:
            s3_server.swift.stop_proxy()

    monkeypatch.setattr(reg, "_put_file", put_then_die)
    try:
        with pytest.raises(Exception, match=r"(?i)connect"):
            reg.publish("demo", files, {"kind": "candidate"})
    finally:
        s3_server.swift.restart_proxy()
    assert len(uploaded) == 1
    monkeypatch.setattr(reg, "_put_file", real_put)
    assert reg.versions("demo") == []  # the half-written version is invisible
    v = reg.publish("demo", files, {"kind": "candidate"})  # the task's retry
    assert [m["version"] for m in reg.versions("demo")] == [v]
    out = reg.pull(f"demo@{v}", tmp_path / "out")
    assert (out / "model.onnx").read_bytes() == files["model.onnx"].read_bytes()
