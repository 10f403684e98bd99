"""Pulling a version: verified (content id, signature, every file's sha256), through the local
content-addressed cache (a mixin of :class:`~wxmodels.registry.core.Registry`)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from wxmodels.errors import ChecksumError, RegistryError
from wxmodels.registry.cache import Cache
from wxmodels.registry.names import MANIFEST, check_identity, parse_ref, validate_file
from wxmodels.registry.signing import SIGNATURE

__all__ = ["Pulling"]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


class Pulling:
    """The deployer's side of :class:`~wxmodels.registry.core.Registry`."""

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
            validate_file(fname)
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
        if found is None or version is None:
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
