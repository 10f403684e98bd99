"""Registry names, references and manifests: what is valid, and how a version id is derived
from the content it names (so that a pull can recompute it)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from wxmodels.errors import ChecksumError, RegistryError

__all__ = [
    "MANIFEST",
    "MANIFEST_SCHEMA",
    "SIGNATURE",
    "check_identity",
    "content_id",
    "parse_ref",
    "sha256_file",
    "validate_file",
    "validate_name",
    "validate_version",
]

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
"""A version's detached signature of its manifest (:mod:`wxmodels.registry.signing`)."""
MANIFEST_SCHEMA = "wxcompress.manifest/1"
_LEGACY_IDENTITY = ("model.onnx", "model.safetensors", "model.json", "climatology.nc")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20


def validate_name(value: str, what: str = "name") -> str:
    """Model and alias names: lowercase letters, digits, ``-``, ``_``; nothing path-like."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise RegistryError(
            f"invalid {what} {value!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return value


def validate_version(value: str) -> str:
    if not _VERSION.match(value) or ".." in value:
        raise RegistryError(f"invalid version {value!r}")
    return value


def validate_file(value: str) -> str:
    if not _FILE.match(value) or ".." in value or value in (MANIFEST, SIGNATURE):
        raise RegistryError(f"invalid file name {value!r} for a registry version")
    return value


def parse_ref(ref: str) -> tuple[str, str]:
    """``"name@alias"`` or ``"name@version"`` -> ``(name, alias_or_version)``."""
    if "@" not in ref:
        raise RegistryError(f"model reference {ref!r} must look like NAME@ALIAS or NAME@VERSION")
    name, tag = ref.split("@", 1)
    validate_name(name, "model name")
    if not tag:
        raise RegistryError(f"model reference {ref!r} has an empty alias/version")
    return name, tag


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def content_id(name: str, files: dict[str, Any], identity: list[str]) -> str:
    """The content hash a version id is derived from: the name and the identity files'
    sha256 and sizes."""
    return hashlib.sha256(
        json.dumps(
            {"name": name, "files": {f: files[f] for f in sorted(identity)}}, sort_keys=True
        ).encode()
    ).hexdigest()


def check_identity(man: dict[str, Any], name: str, version: str) -> None:
    """The version id recomputed from the manifest: its identity files must hash to its
    ``content_sha256``, and a content-derived version id must be that hash's prefix. A manifest
    rewritten after publication (a file swapped and its sha256 updated) fails here."""
    ref = f"{name}@{version}"
    if man.get("name") != name or man.get("version") != version:
        raise ChecksumError(f"{ref}: the manifest names another version")
    files = man.get("files")
    if not isinstance(files, dict) or not files:
        raise ChecksumError(f"{ref}: the manifest lists no files")
    if "identity" in man:
        candidates = [list(man["identity"])]
    else:  # manifests written before they named their identity files
        candidates = [[f for f in _LEGACY_IDENTITY if f in files], list(files)]
    try:
        ok = any(c and content_id(name, files, c) == man.get("content_sha256") for c in candidates)
    except KeyError as e:
        raise ChecksumError(f"{ref}: the manifest's identity file {e} is not listed") from None
    if not ok:
        raise ChecksumError(
            f"{ref}: the manifest's files do not hash to its content id: it was changed after "
            "publication"
        )
    derived = man.get(
        "version_from", "content" if re.fullmatch(r"[0-9a-f]{12}", version) else "given"
    )
    if derived == "content" and man["content_sha256"][:12] != version:
        raise ChecksumError(
            f"{ref}: the version id is not the hash of the version's content "
            f"({man['content_sha256'][:12]}): the manifest was rewritten"
        )
