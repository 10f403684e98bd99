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
import hashlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

from wxmodels.errors import ChecksumError, RegistryError
from wxmodels.locks import FileLock, LeaseLock, Lock
from wxmodels.paths import claim, entries, marker_bytes
from wxmodels.registry.aliases import AliasEvent, event_name, order, seq_of
from wxmodels.registry.cache import Cache
from wxmodels.registry.signing import SIGNATURE, Signer, TrustStore, signer_from_env, trust_from
from wxmodels.utils import rm_tree

__all__ = ["AliasEvent", "Registry", "check_identity", "content_id", "parse_ref", "validate_name"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "wxcompress.manifest/1"
MARKER = "wxcompress-registry.json"
_LOCKS = "_locks"
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


def _validate_version(value: str) -> str:
    if not _VERSION.match(value) or ".." in value:
        raise RegistryError(f"invalid version {value!r}")
    return value


def _validate_file(value: str) -> str:
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


def _mtime(info: dict[str, Any], default: float) -> float:
    """Modification time (epoch seconds) of an fsspec ``info`` entry, local or object store."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(key)
        if isinstance(v, datetime):
            return v.timestamp()
        if isinstance(v, int | float):
            return float(v)
    return default


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


def _now() -> datetime:
    """The time written into manifests and alias events (for people; never for ordering)."""
    return datetime.now(UTC)


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
            _validate_file(fname)
            src = Path(src)
            listed[fname] = {"sha256": sha256_file(src), "size": src.stat().st_size}
        ident = sorted(identity or list(listed))
        missing = [f for f in ident if f not in listed]
        if missing:
            raise RegistryError(f"identity files {missing} are not among the files published")
        content = content_id(name, listed, ident)
        auto = version is None
        version = _validate_version(version or content[:12])
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

    # -- aliases -----------------------------------------------------------------------
    def _alias_dir(self, name: str, alias: str) -> str:
        return self._p(validate_name(name, "model name"), "aliases", validate_name(alias, "alias"))

    def history(self, name: str, alias: str) -> list[AliasEvent]:
        """All events of ``alias``, oldest first (in the registry's order, see
        :mod:`wxmodels.registry.aliases`)."""
        d = self._alias_dir(name, alias)
        if not self._exists(d):
            return []
        events = []
        for p in self.fs.ls(d, detail=False):
            if p.endswith(".json"):
                try:
                    ev = AliasEvent(**self._read_json(p))
                except (json.JSONDecodeError, TypeError) as e:
                    log.warning("ignoring unreadable alias event %s: %s", p, e)
                    continue
                ev.seq = seq_of(p)  # the object's name, not its body, gives the order
                events.append(ev)
        return order(events)

    def resolve_alias(self, name: str, alias: str) -> str | None:
        h = self.history(name, alias)
        return h[-1].version if h else None

    def set_alias(
        self, name: str, alias: str, version: str, *, reason: str = "", run: str = ""
    ) -> AliasEvent:
        """Point ``alias`` at an existing ``version`` by appending the next numbered event."""
        if not self.has_version(name, version):
            raise RegistryError(f"{name}@{version} does not exist (or has no manifest)")
        validate_name(alias, "alias")
        with self._writing("aliases", name, alias):
            h = self.history(name, alias)
            seq = max((e.seq for e in h if e.seq is not None), default=len(h)) + 1
            ev = AliasEvent(
                alias=alias,
                version=version,
                at=_now().isoformat(timespec="microseconds"),
                by=_who(),
                reason=reason,
                run=run,
                previous=h[-1].version if h else None,
                event=f"{seq:012d}",
                seq=seq,
            )
            path = f"{self._alias_dir(name, alias)}/{event_name(seq)}"
            if self._exists(path):  # only a writer that ignored the lock gets here
                raise RegistryError(f"{name}@{alias}: event {seq} exists already; try again")
            self._put_bytes(path, json.dumps(ev.to_dict(), indent=1).encode())
        return ev

    def rollback(
        self, name: str, alias: str, *, reason: str = "rollback", run: str = ""
    ) -> AliasEvent:
        """Move ``alias`` back to the version it pointed at before its current one. Under the
        alias's lock, so that it either takes effect or fails; checked by reading it back."""
        with self._writing("aliases", name, alias):
            h = self.history(name, alias)
            if not h:
                raise RegistryError(f"{name}@{alias} has no history")
            current = h[-1].version
            previous = next((e.version for e in reversed(h) if e.version != current), None)
            if previous is None:
                raise RegistryError(f"{name}@{alias} has never pointed at another version")
            ev = self.set_alias(name, alias, previous, reason=reason, run=run)
            now = self.resolve_alias(name, alias)
        if now != previous:
            raise RegistryError(
                f"{name}@{alias}: the rollback to {previous} did not take effect (now {now})"
            )
        return ev

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
            version, raw, sig = self._resolve_cached(cache, name, tag, ref)
        else:
            name, version = self.resolve(ref)
            vdir = self._vdir(name, version)
            raw = self._read_bytes(f"{vdir}/{MANIFEST}")
            try:
                sig = self._read_bytes(f"{vdir}/{SIGNATURE}")
            except FileNotFoundError:
                sig = None
        try:
            man = json.loads(raw)
        except json.JSONDecodeError:
            raise ChecksumError(f"{name}@{version}: the manifest is not valid JSON") from None
        check_identity(man, name, version)
        signed_by = self.trust.verify(raw, sig, f"{name}@{version}")
        if not offline:
            # an immutable version seen before with other content is an alarm, not an update
            cache.put_manifest(self.url, name, version, raw, sig)
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
        for fname, body in ((MANIFEST, raw), (SIGNATURE, sig)):
            if body is not None:
                tmp = cache.tmp()
                tmp.write_bytes(body)
                blobs[fname] = cache.add(tmp, hashlib.sha256(body).hexdigest())
        if signed_by:
            log.info("%s@%s: signature verified (key %s)", name, version, signed_by)
        target = Path(dest) if dest is not None else cache.model_dir(self.url, name, version)
        return cache.materialise(blobs, target, link=dest is None, what=f"{name}@{version}")

    def _resolve_cached(
        self, cache: Cache, name: str, tag: str, ref: str
    ) -> tuple[str, bytes, bytes | None]:
        version = tag if cache.manifest(self.url, name, tag) else cache.alias(self.url, name, tag)
        found = cache.manifest(self.url, name, version) if version else None
        if found is None:
            raise RegistryError(f"{ref} is not in the cache of {self.url}; pull it once online")
        return version, *found

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
        from wxmodels.export.packing import PackError, unpack_onnx

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
