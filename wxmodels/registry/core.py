"""The registry.

Layout under the root URL::

    <name>/versions/<version>/<files>            uploaded first
    <name>/versions/<version>/manifest.json      written last: a version without it is invisible
    <name>/aliases/<alias>/<time>-<uuid>.json    append-only alias events; the newest is current

Versions are content-addressed (the id is a hash of the files' sha256 and names), so a retried
publication of the same bytes lands on the same version, and different bytes never overwrite a
version. Alias moves never rewrite an object: two concurrent promotions both leave their event,
and the order between them is the events' own (time, uuid) order.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

from wxmodels.errors import ChecksumError, RegistryError
from wxmodels.registry.cache import Cache
from wxmodels.utils import rm_tree

__all__ = ["AliasEvent", "Registry", "parse_ref", "validate_name"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "wxcompress.manifest/1"
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


def _validate_version(value: str) -> str:
    if not _VERSION.match(value) or ".." in value:
        raise RegistryError(f"invalid version {value!r}")
    return value


def _validate_file(value: str) -> str:
    if not _FILE.match(value) or ".." in value or value == MANIFEST:
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


@dataclass
class AliasEvent:
    """One move of an alias: who pointed it where, when, why, from which run."""

    alias: str
    version: str
    at: str
    by: str
    reason: str = ""
    run: str = ""
    previous: str | None = None
    event: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mtime(info: dict[str, Any], default: float) -> float:
    """Modification time (epoch seconds) of an fsspec ``info`` entry, local or object store."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(key)
        if isinstance(v, datetime):
            return v.timestamp()
        if isinstance(v, int | float):
            return float(v)
    return default


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Registry:
    """A registry rooted at ``url`` (local directory or fsspec URL such as ``s3://bucket/p``).

    Credentials come from the environment (or ``storage_options``); they are never written to
    manifests or logs.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = str(url).rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self._local = "file" in self.fs.protocol

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    # -- paths -------------------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _vdir(self, name: str, version: str) -> str:
        return self._p(validate_name(name, "model name"), "versions", _validate_version(version))

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

    def _read_json(self, path: str) -> Any:
        with self.fs.open(path, "rb") as f:
            return json.loads(f.read())

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
        entries = {}
        for fname, src in sorted(files.items()):
            _validate_file(fname)
            src = Path(src)
            entries[fname] = {"sha256": sha256_file(src), "size": src.stat().st_size}
        ident = identity or list(entries)
        missing = [f for f in ident if f not in entries]
        if missing:
            raise RegistryError(f"identity files {missing} are not among the files published")
        content = hashlib.sha256(
            json.dumps(
                {"name": name, "files": {f: entries[f] for f in sorted(ident)}}, sort_keys=True
            ).encode()
        ).hexdigest()
        auto = version is None
        version = _validate_version(version or content[:12])
        vdir = self._vdir(name, version)
        mpath = f"{vdir}/{MANIFEST}"
        if self._exists(mpath):
            existing = self._read_json(mpath)
            if auto and existing.get("content_sha256") == content:
                log.info("%s@%s already published with the same content", name, version)
                return version
            raise RegistryError(f"{name}@{version} already exists; versions are immutable")
        for fname, src in sorted(files.items()):
            self._put_file(Path(src), f"{vdir}/{fname}")
        body = {
            **manifest,
            "schema": MANIFEST_SCHEMA,
            "name": name,
            "version": version,
            "content_sha256": content,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "created_by": _who(),
            "files": entries,
        }
        self._put_bytes(mpath, json.dumps(body, indent=1, sort_keys=True, default=str).encode())
        log.info("published %s@%s (%d files)", name, version, len(entries))
        return version

    # -- aliases -----------------------------------------------------------------------
    def _alias_dir(self, name: str, alias: str) -> str:
        return self._p(validate_name(name, "model name"), "aliases", validate_name(alias, "alias"))

    def history(self, name: str, alias: str) -> list[AliasEvent]:
        """All events of ``alias``, oldest first."""
        d = self._alias_dir(name, alias)
        if not self._exists(d):
            return []
        events = []
        for p in self.fs.ls(d, detail=False):
            if p.endswith(".json"):
                try:
                    events.append(AliasEvent(**self._read_json(p)))
                except (json.JSONDecodeError, TypeError) as e:
                    log.warning("ignoring unreadable alias event %s: %s", p, e)
        return sorted(events, key=lambda e: (e.at, e.event))

    def resolve_alias(self, name: str, alias: str) -> str | None:
        h = self.history(name, alias)
        return h[-1].version if h else None

    def set_alias(
        self, name: str, alias: str, version: str, *, reason: str = "", run: str = ""
    ) -> AliasEvent:
        """Point ``alias`` at an existing ``version`` by appending an event."""
        if not self.has_version(name, version):
            raise RegistryError(f"{name}@{version} does not exist (or has no manifest)")
        now = datetime.now(UTC)
        ev = AliasEvent(
            alias=validate_name(alias, "alias"),
            version=version,
            at=now.isoformat(timespec="microseconds"),
            by=_who(),
            reason=reason,
            run=run,
            previous=self.resolve_alias(name, alias),
            event=f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}",
        )
        self._put_bytes(
            f"{self._alias_dir(name, alias)}/{ev.event}.json",
            json.dumps(ev.to_dict(), indent=1).encode(),
        )
        return ev

    def rollback(
        self, name: str, alias: str, *, reason: str = "rollback", run: str = ""
    ) -> AliasEvent:
        """Move ``alias`` back to the version it pointed at before its current one."""
        h = self.history(name, alias)
        if not h:
            raise RegistryError(f"{name}@{alias} has no history")
        current = h[-1].version
        previous = next((e.version for e in reversed(h) if e.version != current), None)
        if previous is None:
            raise RegistryError(f"{name}@{alias} has never pointed at another version")
        return self.set_alias(name, alias, previous, reason=reason, run=run)

    def aliases(self, name: str) -> dict[str, str]:
        d = self._p(validate_name(name, "model name"), "aliases")
        if not self._exists(d):
            return {}
        out = {}
        for p in sorted(self.fs.ls(d, detail=False)):
            alias = p.rstrip("/").rsplit("/", 1)[-1]
            v = self.resolve_alias(name, alias)
            if v:
                out[alias] = v
        return out

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
        _validate_version(tag)
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

    # -- pulling -----------------------------------------------------------------------
    def pull(
        self,
        ref: str,
        dest: str | Path | None = None,
        *,
        packed: bool = False,
        offline: bool = False,
        cache: Cache | str | Path | None = None,
    ) -> Path:
        """The files of ``ref`` (``name@alias`` or ``name@version``), verified, in a directory.

        Files go through the local content-addressed cache (:class:`Cache`; ``$WXC_CACHE``):
        a file whose sha256 is already there is not downloaded again; a downloaded file is
        checked against the manifest's sha256 and size before it enters the cache, and every
        cached file is re-hashed when handed out. A mismatch raises
        :class:`~wxmodels.errors.ChecksumError` naming the file.

        ``dest``: copy the files there (default: the cache's own directory for the version,
        hard links, returned). ``offline``: resolve the reference and take every file from the
        cache alone, without contacting the registry (aliases as last seen online).
        ``packed``: download ``model.wxpack`` instead of ``model.onnx`` and the torch weights
        (the smallest transfer), unpack it and check the result against the manifest's sha256
        of ``model.onnx``: the same file as a full pull, end to end.
        """
        cache = cache if isinstance(cache, Cache) else Cache(cache)
        name, tag = parse_ref(ref)
        if offline:
            version, man = self._resolve_cached(cache, name, tag, ref)
        else:
            name, version = self.resolve(ref)
            man = self._read_json(f"{self._vdir(name, version)}/{MANIFEST}")
            if man.get("name") != name or man.get("version") != version:
                raise ChecksumError(f"{name}@{version}: the manifest names another version")
            cache.put_manifest(self.url, man)
            if tag != version:
                cache.remember_alias(self.url, name, tag, version)
        vdir = self._vdir(name, version)
        files = dict(man["files"])
        if packed:
            if "model.wxpack" not in files:
                raise RegistryError(f"{name}@{version} has no packed form (model.wxpack)")
            for skip in ("model.onnx", "model.safetensors"):
                files.pop(skip, None)
        blobs = {}
        for fname, meta in sorted(files.items()):
            _validate_file(fname)
            what = f"{name}@{version}/{fname}"
            if cache.has(meta["sha256"], meta["size"]):
                blobs[fname] = cache.verified(meta["sha256"], meta["size"], what)
            elif offline:
                raise RegistryError(f"{what} is not in the cache; pull {ref} once online")
            else:  # hashed while downloading
                blobs[fname] = self._download(f"{vdir}/{fname}", meta, cache, what)
        if packed:
            blobs["model.onnx"] = self._unpack(cache, blobs["model.wxpack"], man, name, version)
        tmp = cache.tmp()
        body = json.dumps(man, indent=1, sort_keys=True).encode()
        tmp.write_bytes(body)
        blobs[MANIFEST] = cache.add(tmp, hashlib.sha256(body).hexdigest())
        target = Path(dest) if dest is not None else cache.model_dir(self.url, name, version)
        return cache.materialise(blobs, target, link=dest is None)

    def _resolve_cached(
        self, cache: Cache, name: str, tag: str, ref: str
    ) -> tuple[str, dict[str, Any]]:
        version = tag if cache.manifest(self.url, name, tag) else cache.alias(self.url, name, tag)
        man = cache.manifest(self.url, name, version) if version else None
        if man is None:
            raise RegistryError(f"{ref} is not in the cache of {self.url}; pull it once online")
        return version, man

    def _download(self, path: str, meta: dict[str, Any], cache: Cache, what: str) -> Path:
        tmp = cache.tmp()
        h = hashlib.sha256()
        size = 0
        try:
            with self.fs.open(path, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if size != meta["size"] or h.hexdigest() != meta["sha256"]:
                raise ChecksumError(
                    f"{what}: checksum mismatch (expected sha256 {meta['sha256'][:16]}..., "
                    f"{meta['size']} bytes; got {h.hexdigest()[:16]}..., {size} bytes): the "
                    "file was changed after publication"
                )
            return cache.add(tmp, meta["sha256"])
        except FileNotFoundError:
            raise ChecksumError(
                f"{what}: listed in the manifest but missing from the registry"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _unpack(cache: Cache, pack: Path, man: dict[str, Any], name: str, version: str) -> Path:
        from wxmodels.compress.packing import PackError, unpack_onnx

        ref = f"{name}@{version}"
        want = man["files"]["model.onnx"]
        if cache.has(want["sha256"], want["size"]):
            return cache.verified(want["sha256"], want["size"], f"{ref}/model.onnx")
        try:
            data = unpack_onnx(pack)
        except PackError as e:
            raise ChecksumError(f"{ref}/model.wxpack: {e}") from None
        if hashlib.sha256(data).hexdigest() != want["sha256"] or len(data) != want["size"]:
            raise ChecksumError(
                f"{ref}/model.wxpack unpacks to a model.onnx that differs from the published one"
            )
        tmp = cache.tmp()
        tmp.write_bytes(data)
        return cache.add(tmp, want["sha256"])
