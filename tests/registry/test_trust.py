"""Items 4 and 5 of the fault suite, on every backend: a rewritten manifest is not trusted,
a cached version is never replaced, signatures are required where keys are trusted, and the
alias history follows the registry's order, not the writers' clocks."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from tests.registry.conftest import stored
from wxmodels.errors import ChecksumError, RegistryError
from wxmodels.registry import Cache, Registry
from wxmodels.registry.signing import Signer, generate_keypair, trust_from


def _rewrite(registry, name, version, fname, data: bytes, *, id_too=False) -> None:
    """An attacker with write access: replace a file and fix its sha256/size (and, with
    ``id_too``, the content id) in the manifest."""
    registry.fs.pipe_file(stored(registry, name, version, fname), data)
    mpath = stored(registry, name, version, "manifest.json")
    man = json.loads(registry.fs.cat_file(mpath))
    man["files"][fname] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    if id_too:
        from wxmodels.registry.core import content_id

        man["content_sha256"] = content_id(name, man["files"], man["identity"])
    registry.fs.pipe_file(mpath, json.dumps(man, indent=1, sort_keys=True).encode())
    registry.fs.invalidate_cache()


@pytest.mark.parametrize("id_too", [False, True], ids=["sha-rewritten", "id-rewritten"])
def test_a_rewritten_manifest_is_refused(registry, files, id_too):
    v = registry.publish("demo", files, {})
    _rewrite(registry, "demo", v, "model.onnx", b"evil" * 50, id_too=id_too)
    msg = "version id is not the hash" if id_too else "do not hash to its content id"
    with pytest.raises(ChecksumError, match=msg):
        registry.pull(f"demo@{v}")


def test_a_cached_version_is_never_replaced(registry, files):
    v = registry.publish("demo", files, {}, identity=["model.onnx"])
    first = registry.pull(f"demo@{v}")
    good = (first / "model.onnx").read_bytes()
    # the manifest changes under the same version (only the card: the id still verifies)
    _rewrite(registry, "demo", v, "card.md", b"# another card\n")
    with pytest.raises(ChecksumError, match="ALARM"):
        registry.pull(f"demo@{v}")
    assert (first / "model.onnx").read_bytes() == good  # the verified copy is kept
    assert (first / "card.md").read_text() == "# card\n"


def test_signed_versions_and_trusted_keys(registry, files, tmp_path, monkeypatch):
    priv, pub = generate_keypair(tmp_path / "keys")
    other_priv, other_pub = generate_keypair(tmp_path / "other", name="other")
    monkeypatch.setenv("WXC_SIGNING_KEY_FILE", str(priv))
    signed = registry.publish("demo", files, {"kind": "candidate"})
    monkeypatch.delenv("WXC_SIGNING_KEY_FILE")
    (tmp_path / "src" / "model.onnx").write_bytes(b"unsigned" * 50)
    unsigned = registry.publish("demo", files, {"kind": "candidate"})
    trusting = Registry(registry.url, _options(registry), trust=trust_from([pub]))
    trusting.pull(f"demo@{signed}", cache=Cache(tmp_path / "c1"))
    with pytest.raises(ChecksumError, match="not signed"):
        trusting.pull(f"demo@{unsigned}", cache=Cache(tmp_path / "c2"))
    with pytest.raises(ChecksumError, match="not among the trusted keys"):
        Registry(registry.url, _options(registry), trust=trust_from([other_pub])).pull(
            f"demo@{signed}", cache=Cache(tmp_path / "c3")
        )
    # a manifest changed after signing (a field the content id does not cover): refused
    mpath = stored(registry, "demo", signed, "manifest.json")
    man = json.loads(registry.fs.cat_file(mpath))
    man["kind"] = "teacher"
    registry.fs.pipe_file(mpath, json.dumps(man, indent=1, sort_keys=True).encode())
    with pytest.raises(ChecksumError, match="signature does not match"):
        trusting.pull(f"demo@{signed}", cache=Cache(tmp_path / "c4"))
    # signed by another key and swapped in: unknown key
    sig = Signer(_private(other_priv)).sign(registry.fs.cat_file(mpath))
    registry.fs.pipe_file(stored(registry, "demo", signed, "manifest.sig"), sig)
    with pytest.raises(ChecksumError, match="not among the trusted keys"):
        trusting.pull(f"demo@{signed}", cache=Cache(tmp_path / "c5"))
    # without trusted keys, signatures are not required (and a pull says nothing of them)
    Registry(registry.url, _options(registry), trust=trust_from([], env=False)).pull(
        f"demo@{unsigned}", cache=Cache(tmp_path / "c6")
    )


def _private(path):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _options(registry) -> dict:
    so = getattr(registry.fs, "storage_options", {}) or {}
    return dict(so) if "file" not in registry.fs.protocol else {}


def test_alias_order_does_not_follow_clocks(registry, files, monkeypatch):
    import wxmodels.registry.core as core

    (tmp := files["model.onnx"]).write_bytes(b"v1" * 60)
    v1 = registry.publish("demo", files, {})
    tmp.write_bytes(b"v2" * 60)
    v2 = registry.publish("demo", files, {})
    tmp.write_bytes(b"v3" * 60)
    v3 = registry.publish("demo", files, {})
    real = core._now
    monkeypatch.setattr(core, "_now", lambda: real() + timedelta(hours=1))  # a fast clock
    registry.set_alias("demo", "edge", v1, reason="fast clock")
    monkeypatch.setattr(core, "_now", real)
    registry.set_alias("demo", "edge", v2)
    assert registry.resolve_alias("demo", "edge") == v2  # the later move wins
    registry.set_alias("demo", "edge", v3)
    ev = registry.rollback("demo", "edge")
    assert (ev.previous, ev.version) == (v3, v2)
    assert registry.resolve_alias("demo", "edge") == v2  # the rollback took effect
    assert [e.seq for e in registry.history("demo", "edge")] == [1, 2, 3, 4]


def test_rollback_without_history_fails(registry, files):
    v = registry.publish("demo", files, {})
    with pytest.raises(RegistryError, match="no history"):
        registry.rollback("demo", "edge")
    registry.set_alias("demo", "edge", v)
    with pytest.raises(RegistryError, match="never pointed at another version"):
        registry.rollback("demo", "edge")
