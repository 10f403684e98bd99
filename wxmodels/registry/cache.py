"""The local, content-addressed cache that pulls go through.

Layout under the cache root (``$WXC_CACHE``, default ``~/.cache/wxcompress``)::

    CACHEDIR.TAG                              the marker (the cache directory tag standard)
    blobs/sha256/<hh>/<sha256>                verified file contents, read-only
    manifests/<registry>/<name>/<version>.json  manifests of versions pulled, as published
    manifests/<registry>/<name>/<version>.sig   their signatures
    aliases/<registry>/<name>/<alias>           the version an alias resolved to when last online
    models/<registry>/<name>/<version>/         a version's files (hard links to the blobs)

``<registry>`` is a hash of the registry URL, so one cache serves several registries. Every
write is a temporary file renamed into place, so an interrupted pull leaves nothing that looks
complete; a blob is re-hashed whenever it is handed out, so a cache edited behind our back is
caught, not served. A version is immutable: the registry offering a manifest for a version
that differs from the one cached is an alarm (:class:`ChecksumError`), never an update.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import uuid
from pathlib import Path

from wxmodels.errors import ChecksumError, PathError, RegistryError
from wxmodels.paths import claim, local_fs, swap_in

__all__ = ["Cache", "default_cache_dir"]

_CHUNK = 1 << 20
_TAG = b"Signature: 8a477f597d28d172789f06886806bc55\n# wxcompress model cache\n"
_PULL_MARKER = ".wxcompress-pull"


def default_cache_dir() -> Path:
    env = os.environ.get("WXC_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wxcompress"


def _hash_file(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


class Cache:
    """Content-addressed blobs plus what is needed to resolve references offline."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self._claimed = False

    def _claim(self) -> None:
        """The cache directory is absent, empty or a wxcompress cache (CACHEDIR.TAG)."""
        if self._claimed:
            return
        claim(
            local_fs(),
            str(self.root),
            url=str(self.root),
            kind="model cache",
            marker="CACHEDIR.TAG",
            content=lambda: _TAG,
            is_ours=lambda b: b"wxcompress" in b,
            legacy=lambda names: set(names) <= {"blobs", "manifests", "aliases", "models", "tmp"},
        )
        self._claimed = True

    @staticmethod
    def key(url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()[:16]

    # -- blobs -------------------------------------------------------------------------
    def blob(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise RegistryError(f"not a sha256: {sha256!r}")
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str, size: int) -> bool:
        p = self.blob(sha256)
        return p.is_file() and p.stat().st_size == size

    def tmp(self) -> Path:
        self._claim()
        d = self.root / "tmp"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{uuid.uuid4().hex}.partial"

    def add(self, tmp: Path, sha256: str) -> Path:
        """Move a verified temporary file into the blob store (read-only)."""
        dst = self.blob(sha256)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp, dst)
        return dst

    def verified(self, sha256: str, size: int, what: str) -> Path:
        """The blob, re-hashed; a blob that no longer matches is removed and reported."""
        p = self.blob(sha256)
        got, n = _hash_file(p)
        if got != sha256 or n != size:
            p.unlink(missing_ok=True)
            raise ChecksumError(
                f"{what}: the cached copy at {p} was modified (removed; pull again online)"
            )
        return p

    # -- references ----------------------------------------------------------------------
    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _manifest_path(self, url: str, name: str, version: str) -> Path:
        return self.root / "manifests" / self.key(url) / name / f"{version}.json"

    def put_manifest(
        self, url: str, name: str, version: str, raw: bytes, sig: bytes | None = None
    ) -> None:
        """Keep a version's manifest (and signature) as published. A different manifest for a
        version already cached raises :class:`ChecksumError`; the cached one is kept."""
        self._claim()
        p = self._manifest_path(url, name, version)
        if p.is_file():
            try:
                same = json.loads(p.read_bytes()) == json.loads(raw)
            except json.JSONDecodeError:
                same = False
            if not same:
                raise ChecksumError(
                    f"ALARM: {url} now serves a different manifest for {name}@{version}, a "
                    f"version this machine pulled before (kept at {p}); versions are immutable, "
                    "so the registry was changed: refusing it"
                )
        else:
            self._write(p, raw)
        if sig is not None:
            self._write(p.with_suffix(".sig"), sig)

    def manifest(self, url: str, name: str, version: str) -> tuple[bytes, bytes | None] | None:
        """The cached manifest bytes and signature bytes (``None`` if unsigned) of a version."""
        p = self._manifest_path(url, name, version)
        if not p.is_file():
            return None
        sig = p.with_suffix(".sig")
        return p.read_bytes(), sig.read_bytes() if sig.is_file() else None

    def remember_alias(self, url: str, name: str, alias: str, version: str) -> None:
        self._write(self.root / "aliases" / self.key(url) / name / alias, version.encode())

    def alias(self, url: str, name: str, alias: str) -> str | None:
        p = self.root / "aliases" / self.key(url) / name / alias
        return p.read_text().strip() if p.is_file() else None

    # -- materialised versions -----------------------------------------------------------
    def model_dir(self, url: str, name: str, version: str) -> Path:
        return self.root / "models" / self.key(url) / name / version

    def materialise(
        self, files: dict[str, Path], dest: Path, *, link: bool, what: str = ""
    ) -> Path:
        """Place ``files`` ({name: blob}) in ``dest``: hard links into the cache's own model
        directories (``link``), copies elsewhere (a deployer may edit them). Built beside
        ``dest`` and swapped in whole, so ``dest`` holds exactly this version's files.

        A destination outside the cache must be absent, an empty directory or an earlier pull
        (marked ``.wxcompress-pull``); a file, a device or a symbolic link is refused."""
        if link:
            if dest.is_dir() and all(
                (dest / f).is_file() and os.path.samefile(dest / f, blob)
                for f, blob in files.items()
            ):
                return dest  # the same (verified) blobs, linked already
            build = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
            build.mkdir(parents=True)
            try:
                for fname, blob in files.items():
                    try:
                        os.link(blob, build / fname)
                    except OSError:  # another file system: copy
                        shutil.copyfile(blob, build / fname)
                shutil.rmtree(dest, ignore_errors=True)
                os.replace(build, dest)
            finally:
                shutil.rmtree(build, ignore_errors=True)
            return dest
        if dest.is_symlink():
            raise PathError(f"{dest} is a symbolic link: refusing to follow it (give a directory)")
        claim(
            local_fs(),
            str(dest),
            url=str(dest),
            kind="pull destination",
            marker=_PULL_MARKER,
            content=bytes,
            is_ours=lambda b: True,
            legacy=lambda names: "manifest.json" in names,  # pulled before the marker existed
            mark=False,
        )
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            build = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
            build.mkdir()
        except OSError as e:
            raise PathError(f"cannot write to {dest}: {e.strerror}") from None
        try:
            for fname, blob in files.items():
                shutil.copyfile(blob, build / fname)
            (build / _PULL_MARKER).write_text(json.dumps({"wxcompress": "pull", "of": what}))
            swap_in(str(build), str(dest))
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        return dest
