"""Where wxcompress may write: only into paths that are absent, empty, or marked as its own.

A store, a registry, a model cache, a pull destination or a forecast output is *claimed*
before the first byte is written: an absent or empty path gets a marker (written first), a
path that carries the right marker is used, anything else is refused with one line. Nothing
outside a claimed path is ever removed, so a mistaken ``store: ..`` or ``--out ~/thesis``
costs an error message, not a directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from wxmodels.errors import PathError

__all__ = ["claim", "entries", "local_fs", "marker_bytes", "swap_in", "write_bytes_atomic"]

log = logging.getLogger(__name__)


def local_fs() -> Any:
    """A local file system of its own (fsspec shares instances; a caller's patched or
    configured one must not be this)."""
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem(skip_instance_cache=True)


def marker_bytes(kind: str, **extra: Any) -> bytes:
    """The content of a marker: which kind of wxcompress path this is, since when."""
    return json.dumps(
        {"wxcompress": kind, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **extra}
    ).encode()


def entries(fs: Any, root: str) -> list[str]:
    """Names directly under ``root`` (``[]`` when it does not exist)."""
    if "file" not in fs.protocol:
        fs.invalidate_cache(root)
    try:
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def write_bytes_atomic(fs: Any, path: str, data: bytes) -> None:
    """A temporary file renamed into place locally; a single PUT on object storage."""
    if "file" in fs.protocol:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)
        fs.invalidate_cache()


def claim(
    fs: Any,
    root: str,
    *,
    url: str,
    kind: str,
    marker: str,
    content: Callable[[], bytes],
    is_ours: Callable[[bytes], bool],
    transient: Iterable[str] = (),
    legacy: Callable[[list[str]], bool] | None = None,
    mark: bool = True,
) -> bool:
    """Make sure ``root`` is this project's ``kind`` before writing into it.

    Args:
        fs, root, url: the file system, the path on it, and how to name it to the user.
        kind: ``store``, ``registry``, ``cache``, ``pull destination``, ...
        marker: path of the marker relative to ``root``.
        content: the marker's bytes, written when ``root`` is claimed.
        is_ours: whether an existing marker's bytes mark the right kind.
        transient: names that another writer claiming the same path at this moment may have
            created before its marker (they do not make the path "not empty").
        legacy: recognises a layout written by an earlier version (adopted: marked now).
        mark: write the marker now (``False``: only check; the caller writes it with the
            content it builds).

    Returns:
        ``True`` when the marker was written now. Raises :class:`PathError` otherwise.
    """
    if "file" in fs.protocol and os.path.lexists(root) and not os.path.isdir(root):
        raise PathError(f"{url} is a file, not a {kind} directory: refusing to write there")
    mpath = f"{root}/{marker}"
    try:
        data = fs.cat_file(mpath)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        data = None
    if data is not None:
        if is_ours(data):
            return False
        raise PathError(
            f"{url} carries a marker that is not a wxcompress {kind}'s ({mpath}): refusing to "
            "write there"
        )
    first = marker.split("/", 1)[0]
    listed = entries(fs, root)
    if first in listed and first not in set(transient):
        # another writer claimed the path between our two looks: read its marker again
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            if is_ours(fs.cat_file(mpath)):
                return False
    names = [
        n
        for n in listed
        if n not in set(transient)
        and n != first
        and not (n.startswith(f"{first}.") and n.endswith(".tmp"))  # its marker, being written
    ]
    if names and not (legacy is not None and legacy(names)):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise PathError(
            f"{url} already holds {len(names)} item(s) ({shown}) and is not a wxcompress {kind}: "
            "refusing to write into it; give an empty or new path"
        )
    if not mark:
        return False
    if names:
        log.info("%s: adopting a %s written by an earlier version", url, kind)
    write_bytes_atomic(fs, mpath, content())
    return True


def swap_in(build: str, dest: str) -> None:
    """Put the finished directory ``build`` at ``dest`` (local), replacing a ``dest`` that the
    caller has checked is this project's own: renamed aside first, removed last, so that an
    interruption leaves either the old or the new directory at ``dest``, never a mix."""
    import shutil

    old = None
    if os.path.lexists(dest):
        old = f"{os.path.dirname(dest) or '.'}/.{os.path.basename(dest)}.{uuid.uuid4().hex}.old"
        os.replace(dest, old)
    os.replace(build, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
