"""glibc allocator controls for processes that churn through large buffers.

Decompressed store chunks and batches are tens of MB each. glibc serves such blocks with
``mmap`` at first, but each ``free`` of one raises its *dynamic* mmap threshold (up to 32 MiB),
after which blocks of that size come from the heap, where a chunk cache evicting in LRU order
leaves holes the allocator cannot return: a long-running reader's RSS creeps up with the number
of chunks it has read, not with what it holds. Both controls are no-ops off glibc.
"""

from __future__ import annotations

import ctypes
from typing import Any

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


_LIBC = _libc()


def trim() -> None:
    """Hand freed heap back to the OS: glibc keeps it per thread arena otherwise (zarr's codec
    threads and a task's thread each grow their own), and a Dask worker counts what it keeps
    as unmanaged memory, which pauses it."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def mmap_large(threshold: int = 1 << 20) -> bool:
    """Serve every block of ``threshold`` bytes or more by ``mmap`` in this process, for good:
    a fixed threshold turns off glibc's dynamic one, so freeing a large buffer returns its
    pages at once. For processes that only read and hand over large arrays (data-loader
    workers), not for a user's main process. True where it took effect."""
    return _LIBC is not None and bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
