"""The registry.

Layout under the root URL::

    wxcompress-registry.json                     the marker: this path is a registry
    <name>/versions/<version>/<files>            uploaded first
    <name>/versions/<version>/manifest.sig       the manifest's signature (when a key is set)
    <name>/versions/<version>/manifest.json      written last: a version without it is invisible
    <name>/aliases/<alias>/<seq>.json            append-only alias events, numbered
    _locks/...                                   writer locks (leases on object storage)

Versions are content-addressed (the id is a hash of the identity files' sha256 and names), so a
retried publication of the same bytes lands on the same version, and different bytes never
overwrite a version. A pull recomputes the id from the manifest and checks every file's sha256
against it, and, where trusted keys are configured, the manifest's signature
(:mod:`wxmodels.registry.signing`). Alias moves never rewrite an object: each is the next
numbered event, taken under the alias's lock (:mod:`wxmodels.registry.aliases`).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

from wxmodels.errors import RegistryError
from wxmodels.locks import FileLock, LeaseLock, Lock
from wxmodels.paths import claim, entries, marker_bytes
from wxmodels.registry.aliases import AliasEvent, AliasLog
from wxmodels.registry.names import (  # noqa: F401  (re-exported)
    _FILE,
    _LEGACY_IDENTITY,
    _NAME,
    MANIFEST,
    MANIFEST_SCHEMA,
    check_identity,
    content_id,
    parse_ref,
    sha256_file,
    validate_file,
    validate_name,
    validate_version,
)
from wxmodels.registry.pull import Pulling
from wxmodels.registry.signing import SIGNATURE, Signer, TrustStore, signer_from_env, trust_from
from wxmodels.utils import rm_tree

__all__ = ["AliasEvent", "Registry", "check_identity", "content_id", "parse_ref", "validate_name"]

log = logging.getLogger(__name__)

MARKER = "wxcompress-registry.json"
_LOCKS = "_locks"


def _mtime(info: dict[str, Any], default: float) -> float:
    """Modification time (epoch seconds) of an fsspec ``info`` entry, local or object store."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(key)
        if isinstance(v, datetime):
            return v.timestamp()
        if isinstance(v, int | float):
            return float(v)
    return default


def _now() -> datetime:
    """The time written into manifests and alias events (for people; never for ordering)."""
    return datetime.now(UTC)


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Registry(Pulling, AliasLog):
    """A registry rooted at ``url`` (local directory or fsspec URL such as ``s3://bucket/p``).

    Credentials come from the environment (or ``storage_options``); they are never written to
    manifests or logs.
    """

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        trust: TrustStore | None = None,
        signer: Signer | None = None,
        lock_timeout: float = 300.0,
    ):
        """``trust``: the keys pulls accept (default: ``$WXC_TRUSTED_KEYS``; none = signatures
        not required). ``signer``: the key publications are signed with (default:
        ``$WXC_SIGNING_KEY`` / ``$WXC_SIGNING_KEY_FILE``; none = unsigned)."""
        if not str(url).strip():
            raise RegistryError("the registry URL is empty")
        self.url = str(url).rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self._local = "file" in self.fs.protocol
        self._trust = trust
        self._signer = signer
        self.lock_timeout = lock_timeout
        self._claimed = False

    @classmethod
    def for_config(cls, promote: Any) -> Registry:
        """The registry of a :class:`~wxmodels.config.PromoteConfig`: its URL and options, its
        trusted keys (plus ``$WXC_TRUSTED_KEYS``)."""
        return cls(
            promote.registry, promote.storage_options, trust=trust_from(promote.trusted_keys)
        )

    @property
    def trust(self) -> TrustStore:
        if self._trust is None:
            self._trust = trust_from()
        return self._trust

    @property
    def signer(self) -> Signer | None:
        return self._signer if self._signer is not None else signer_from_env()

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    # -- paths -------------------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _vdir(self, name: str, version: str) -> str:
        return self._p(validate_name(name, "model name"), "versions", validate_version(version))

    # -- low-level I/O -----------------------------------------------------------------
    def _put_bytes(self, path: str, data: bytes) -> None:
        if self._local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.partial"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def _put_file(self, src: Path, path: str) -> None:
        if self._local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.partial"
            self.fs.put_file(str(src), tmp)
            os.replace(tmp, path)
        else:
            self.fs.put_file(str(src), path)

    def _read_bytes(self, path: str) -> bytes:
        with self.fs.open(path, "rb") as f:
            return f.read()

    def _read_json(self, path: str) -> Any:
        return json.loads(self._read_bytes(path))

    def _claim(self) -> None:
        """Before the first write: the root must be absent, empty or a registry (marked)."""
        if self._claimed:
            return

        def legacy(names: list[str]) -> bool:
            return all(
                (_NAME.match(n) and set(entries(self.fs, self._p(n))) <= {"versions", "aliases"})
                or n == _LOCKS
                for n in names
            )

        claim(
            self.fs,
            self.root,
            url=self.url,
            kind="registry",
            marker=MARKER,
            content=lambda: marker_bytes("registry"),
            is_ours=lambda b: b'"wxcompress": "registry"' in b,
            transient=(_LOCKS,),
            legacy=legacy,
        )
        self._claimed = True

    def _lock(self, *parts: str) -> Lock:
        what = f"registry {self.url} ({'/'.join(parts)})"
        path = self._p(_LOCKS, *parts)
        if self._local:
            return FileLock(f"{path}.lock", what, timeout=self.lock_timeout)
        return LeaseLock(self.fs, path, what, timeout=self.lock_timeout)

    @contextlib.contextmanager
    def _writing(self, *parts: str) -> Iterator[None]:
        self._claim()
        with self._lock(*parts):
            yield

    def _exists(self, path: str) -> bool:
        if not self._local:
            self.fs.invalidate_cache()
        return self.fs.exists(path)

    # -- publishing --------------------------------------------------------------------
    def publish(
        self,
        name: str,
        files: dict[str, str | Path],
        manifest: dict[str, Any],
        *,
        version: str | None = None,
        identity: list[str] | None = None,
    ) -> str:
        """Upload ``files`` ({name in version: local path}) then the manifest; return the version.

        The version is the content hash of the ``identity`` files (all files by default: pass
        the model files so that re-measured cards do not make a new version) unless given.
        Publishing the same content again returns the existing version; a given version that
        already exists is refused.
        """
        validate_name(name, "model name")
        listed = {}
        for fname, src in sorted(files.items()):
            validate_file(fname)
            src = Path(src)
            listed[fname] = {"sha256": sha256_file(src), "size": src.stat().st_size}
        ident = sorted(identity or list(listed))
        missing = [f for f in ident if f not in listed]
        if missing:
            raise RegistryError(f"identity files {missing} are not among the files published")
        content = content_id(name, listed, ident)
        auto = version is None
        version = validate_version(version or content[:12])
        vdir = self._vdir(name, version)
        mpath = f"{vdir}/{MANIFEST}"
        if self._exists(mpath):
            return self._existing(mpath, name, version, content, auto)
        self._claim()
        for fname, src in sorted(files.items()):
            self._put_file(Path(src), f"{vdir}/{fname}")
        body = {
            **manifest,
            "schema": MANIFEST_SCHEMA,
            "name": name,
            "version": version,
            "version_from": "content" if auto else "given",
            "identity": ident,
            "content_sha256": content,
            "created_at": _now().isoformat(timespec="seconds"),
            "created_by": _who(),
            "files": listed,
        }
        data = json.dumps(body, indent=1, sort_keys=True, default=str).encode()
        signer = self.signer
        with self._writing("versions", name, version):
            if self._exists(mpath):  # a racing publication of the same content won
                return self._existing(mpath, name, version, content, auto)
            if signer is not None:
                self._put_bytes(f"{vdir}/{SIGNATURE}", signer.sign(data))
            self._put_bytes(mpath, data)
        log.info(
            "published %s@%s (%d files%s)",
            name,
            version,
            len(listed),
            f", signed by key {signer.key_id}" if signer else ", unsigned",
        )
        return version

    def _existing(self, mpath: str, name: str, version: str, content: str, auto: bool) -> str:
        existing = self._read_json(mpath)
        if auto and existing.get("content_sha256") == content:
            log.info("%s@%s already published with the same content", name, version)
            return version
        raise RegistryError(f"{name}@{version} already exists; versions are immutable")

    @staticmethod
    def _clock() -> datetime:
        return _now()

    @staticmethod
    def _whoami() -> str:
        return _who()

    # -- reading -----------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self._exists(self.root):
            return []
        return sorted(
            p.rstrip("/").rsplit("/", 1)[-1]
            for p in self.fs.ls(self.root, detail=False)
            if _NAME.match(p.rstrip("/").rsplit("/", 1)[-1])
        )

    def has_version(self, name: str, version: str) -> bool:
        return self._exists(f"{self._vdir(name, version)}/{MANIFEST}")

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Manifests of the published versions of ``name``, oldest first (incomplete ones are
        invisible)."""
        d = self._p(validate_name(name, "model name"), "versions")
        if not self._exists(d):
            return []
        out = []
        for p in self.fs.ls(d, detail=False):
            m = f"{p.rstrip('/')}/{MANIFEST}"
            if self._exists(m):
                out.append(self._read_json(m))
        return sorted(out, key=lambda m: (m.get("created_at", ""), m["version"]))

    def resolve(self, ref: str) -> tuple[str, str]:
        """``name@alias`` or ``name@version`` -> ``(name, version)``."""
        name, tag = parse_ref(ref)
        if _NAME.match(tag):
            v = self.resolve_alias(name, tag)
            if v is not None:
                return name, v
        validate_version(tag)
        if self.has_version(name, tag):
            return name, tag
        raise RegistryError(f"{ref}: no such alias or version in {self.url}")

    def manifest(self, ref: str) -> dict[str, Any]:
        name, version = self.resolve(ref)
        return self._read_json(f"{self._vdir(name, version)}/{MANIFEST}")

    # -- housekeeping --------------------------------------------------------------------
    def gc(self, *, older_than: float = 3600.0, dry_run: bool = False) -> list[str]:
        """Delete what interrupted writers left: version directories without a manifest and
        ``*.partial`` files, once their newest file is ``older_than`` seconds old (younger ones
        may belong to a publication still in flight). Returns the paths (removed unless
        ``dry_run``); published versions and alias events are never touched."""
        now = time.time()
        doomed = []
        for name in self.names():
            d = self._p(name, "versions")
            if not self._exists(d):
                continue
            for p in self.fs.ls(d, detail=False):
                p = p.rstrip("/")
                if self._exists(f"{p}/{MANIFEST}"):
                    continue
                infos = list(self.fs.find(p, detail=True).values())
                newest = max((_mtime(i, now) for i in infos), default=now)
                if now - newest >= older_than:
                    doomed.append(p)
        if self._local and self._exists(self.root):
            for p, info in self.fs.find(self.root, detail=True).items():
                stale = p.endswith(".partial") and now - _mtime(info, now) >= older_than
                if stale and not any(p.startswith(f"{d}/") for d in doomed):
                    doomed.append(p)
        for p in doomed:
            log.info("%s %s", "would remove" if dry_run else "removing", p)
            if not dry_run:
                rm_tree(self.fs, p)  # object by object on S3 (Swift refuses bulk deletes)
        return doomed
