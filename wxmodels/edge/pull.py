"""Pulling a version with the standard library alone: from a registry directory (a path or
``file://``) or over ``http(s)://`` (any static file server, or an object store's HTTP
endpoint in front of the registry's bucket).

What is checked is what :meth:`wxmodels.registry.Registry.pull` checks: the manifest names the
version asked for and its identity files hash to its content id (a manifest rewritten after
publication fails), every file taken matches the manifest's sha256 and size, and with trusted
keys given the manifest's signature (that part needs the ``cryptography`` package). Files go
to a temporary directory beside the destination and replace it in one rename; a destination
that holds anything but an earlier pull is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, cast

from wxmodels.errors import ChecksumError, PathError, RegistryError
from wxmodels.registry.aliases import AliasEvent, event_name, order, seq_of
from wxmodels.registry.names import (
    MANIFEST,
    SIGNATURE,
    check_identity,
    parse_ref,
    validate_file,
    validate_name,
    validate_version,
)

__all__ = ["ORT_FILES", "RUNTIME_FILES", "Source", "pull"]

RUNTIME_FILES = ("model.onnx", "model.json", "climatology.npz", "card.md", "scorecard.json")
"""What an edge pull takes by default: the model, its description and climatology, its card
(not the torch weights, the NetCDF climatology, the packed form or the plots)."""
ORT_FILES = ("model.ort", *RUNTIME_FILES[1:])
"""The same with ``model.ort`` (the batch-1 form in ORT format) instead of ``model.onnx``: for
onnxruntime's minimal builds, which load only that format."""

MARKER = ".wxc-edge.json"
"""Written into a pulled directory: what it holds (and that it may be replaced by a pull)."""

_CHUNK = 1 << 20
_TIMEOUT = 60.0


class Source:
    """A registry's files by relative path: a directory, or a base URL over HTTP(S)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme in ("http", "https"):
            self.http = True
            self.root: Path | None = None
        elif parsed.scheme in ("", "file"):
            self.http = False
            self.root = Path(urllib.parse.unquote(parsed.path) if parsed.scheme else url)
            if not self.root.is_dir():
                raise RegistryError(f"registry {url}: no such directory")
        else:
            raise RegistryError(
                f"registry {url}: the edge runtime reads a directory, file:// or http(s):// "
                "(for s3:// use the bucket's HTTPS endpoint, or wxc registry pull)"
            )

    def open(self, rel: str) -> BinaryIO:
        """Open ``rel`` for reading; :class:`FileNotFoundError` when it is not there."""
        if self.root is not None:
            return open(self.root / rel, "rb")
        try:
            return cast(BinaryIO, urllib.request.urlopen(f"{self.url}/{rel}", timeout=_TIMEOUT))
        except urllib.error.HTTPError as e:
            if e.code in (403, 404):  # object stores answer 403 for a missing key
                raise FileNotFoundError(rel) from None
            raise RegistryError(f"{self.url}/{rel}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            raise RegistryError(f"registry {self.url} cannot be reached: {e}") from None

    def read(self, rel: str) -> bytes:
        with self.open(rel) as f:
            return f.read()

    def exists(self, rel: str) -> bool:
        try:
            self.open(rel).close()
            return True
        except FileNotFoundError:
            return False

    def alias_events(self, name: str, alias: str) -> list[AliasEvent]:
        """The alias's history, oldest first. A directory is listed; over HTTP, where nothing
        can be listed, the numbered events are found by probing (``000000000001.json``, ...:
        the numbers have no gaps), so events written before numbering are not seen there."""
        d = f"{name}/aliases/{alias}"
        if self.root is not None:
            names: Iterable[str] = (
                sorted(p.name for p in (self.root / d).iterdir() if p.suffix == ".json")
                if (self.root / d).is_dir()
                else []
            )
        else:
            names = [event_name(k) for k in range(1, self._last_seq(d) + 1)]
        events = []
        for n in names:
            try:
                ev = AliasEvent(**json.loads(self.read(f"{d}/{n}")))
            except (json.JSONDecodeError, TypeError):
                continue  # as the registry does: an unreadable event is not a move
            ev.seq = seq_of(n)
            events.append(ev)
        return order(events)

    def _last_seq(self, d: str) -> int:
        """The highest event number under ``d`` (0 for none): doubling, then bisection."""
        if not self.exists(f"{d}/{event_name(1)}"):
            return 0
        lo, hi = 1, 2
        while self.exists(f"{d}/{event_name(hi)}"):
            lo, hi = hi, hi * 2
        while hi - lo > 1:  # lo exists, hi does not
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.exists(f"{d}/{event_name(mid)}") else (lo, mid)
        return lo


def resolve(src: Source, ref: str) -> tuple[str, str]:
    """``name@alias`` or ``name@version`` -> ``(name, version)``."""
    name, tag = parse_ref(ref)
    try:
        validate_name(tag, "alias")
        events = src.alias_events(name, tag)
    except RegistryError:
        events = []
    if events:
        return name, validate_version(events[-1].version)
    validate_version(tag)
    if src.exists(f"{name}/versions/{tag}/{MANIFEST}"):
        return name, tag
    raise RegistryError(f"{ref}: no such alias or version in {src.url}")


def pull(
    registry: str,
    ref: str,
    dest: str | Path,
    *,
    files: Iterable[str] | None = RUNTIME_FILES,
    trusted_keys: Iterable[str | Path] = (),
) -> Path:
    """Pull ``ref`` (``name@alias`` or ``name@version``) from ``registry`` into ``dest``,
    verified; returns ``dest``. ``files``: which of the version's files to take (those it
    has; ``None`` for all). ``trusted_keys``: public keys (PEM files) one of which must have
    signed the manifest."""
    src = Source(registry)
    name, version = resolve(src, ref)
    vdir = f"{name}/versions/{version}"
    raw = src.read(f"{vdir}/{MANIFEST}")
    try:
        man: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError:
        raise ChecksumError(f"{name}@{version}: the manifest is not valid JSON") from None
    check_identity(man, name, version)
    sig = src.read(f"{vdir}/{SIGNATURE}") if src.exists(f"{vdir}/{SIGNATURE}") else None
    signed_by = _verify(raw, sig, f"{name}@{version}", list(trusted_keys))
    listed: dict[str, dict[str, Any]] = man["files"]
    wanted = sorted(listed if files is None else (f for f in files if f in listed))
    if files is not None and "climatology.npz" not in listed and "climatology.nc" in listed:
        wanted.append("climatology.nc")  # published before the .npz existed: needs xarray
    if "model.onnx" not in wanted and "model.ort" not in wanted:
        raise RegistryError(f"{name}@{version} has no ONNX model to run")
    dest = Path(dest)
    _check_destination(dest)
    tmp = dest.with_name(f".{dest.name}.pulling-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        for fname in wanted:
            validate_file(fname)
            _fetch(src, f"{vdir}/{fname}", listed[fname], tmp / fname, f"{name}@{version}/{fname}")
        (tmp / MANIFEST).write_bytes(raw)
        if sig is not None:
            (tmp / SIGNATURE).write_bytes(sig)
        (tmp / MARKER).write_text(
            json.dumps(
                {
                    "registry": registry,
                    "ref": ref,
                    "model": name,
                    "version": version,
                    "files": wanted,
                    "signed_by": signed_by,
                },
                indent=1,
            )
        )
        _swap_in(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _fetch(src: Source, rel: str, meta: dict[str, Any], out: Path, what: str) -> None:
    h = hashlib.sha256()
    size = 0
    try:
        with src.open(rel) as f, open(out, "wb") as w:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
                w.write(chunk)
    except FileNotFoundError:
        raise ChecksumError(
            f"{what}: listed in the manifest but missing from the registry"
        ) from None
    if size != meta["size"] or h.hexdigest() != meta["sha256"]:
        raise ChecksumError(
            f"{what}: checksum mismatch (expected sha256 {meta['sha256'][:16]}..., "
            f"{meta['size']} bytes; got {h.hexdigest()[:16]}..., {size} bytes): the file was "
            "changed after publication"
        )


def _verify(raw: bytes, sig: bytes | None, what: str, keys: list[str | Path]) -> str | None:
    if not keys:
        return None
    try:
        from wxmodels.registry.signing import trust_from
    except ImportError:
        raise RegistryError(
            "checking signatures needs the cryptography package (pip install cryptography)"
        ) from None
    return trust_from(keys, env=False).verify(raw, sig, what)


def _check_destination(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise PathError(f"{dest} exists and is not a directory: not replaced")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).exists():
        raise PathError(
            f"{dest} holds files that are not an edge pull: nothing was written (pull into an "
            "empty or new directory)"
        )


def _swap_in(tmp: Path, dest: Path) -> None:
    """``tmp`` takes ``dest``'s place: a directory rename, the old pull removed after."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except OSError:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
