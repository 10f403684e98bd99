"""Small shared helpers: stable hashes, derived seeds, code version, atomic JSON."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import subprocess
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "code_version",
    "derive_seed",
    "git_commit",
    "package_versions",
    "read_json",
    "rm_tree",
    "stable_hash",
    "write_json_atomic",
]


def stable_hash(obj: Any, n: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys), first ``n`` hex digits."""
    data = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:n]


def derive_seed(base: int, *keys: str) -> int:
    """A seed for one job, derived from ``base`` and string keys with ``SeedSequence``."""
    spawn = tuple(int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) for k in keys)
    return int(np.random.SeedSequence(entropy=base, spawn_key=spawn).generate_state(1)[0])


@functools.cache
def git_commit() -> str:
    """The commit of the checkout the code runs from (``WXC_GIT_COMMIT`` wins), or ``unknown``."""
    if os.environ.get("WXC_GIT_COMMIT"):
        return os.environ["WXC_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_version() -> str:
    from wxmodels import __version__

    return f"{__version__}+{git_commit()[:12]}"


def package_versions(
    names: tuple[str, ...] = ("torch", "onnx", "onnxruntime", "numpy", "xarray", "zarr"),
) -> dict[str, str]:
    out = {}
    for n in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[n] = metadata.version(n)
    return out


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)
    return path


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def rm_tree(fs: Any, path: str) -> None:
    """Remove ``path`` and everything under it, one object at a time.

    Some S3-compatible servers (OpenStack Swift's s3api) refuse the batched DeleteObjects call
    that current botocore sends without Content-MD5; single deletes work everywhere.
    """
    if "file" in fs.protocol:
        if fs.exists(path):
            fs.rm(path, recursive=True)
        return
    try:
        files = fs.find(path)
    except FileNotFoundError:
        return
    for f in files:
        fs.rm_file(f)
    fs.invalidate_cache()
