"""Fields read from the store as they are used, in bounded memory.

:class:`StoreArray` stands where an in-memory ``(T, V, H, W)`` array stood in
:class:`~wxmodels.data.fields.Fields`: indexing its first axis (an int, a slice, an array of
indices of any shape) reads the store's time chunks that hold those steps, through a cache of
whole chunks bounded in bytes. Nothing reads the whole archive unless asked to, and asking for
more than :attr:`StoreArray.max_read_bytes` at once is refused with the size, so a code path
that would still materialise the archive fails loudly instead of swapping.

:class:`ClimArray` does the same for the climatology at every time (evaluated at the indexed
steps), and :class:`Anomalies` for the field minus it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from wxmodels.errors import DataError
from wxmodels.schema import LAT, LON, TIME

__all__ = ["Anomalies", "ClimArray", "StoreArray", "first_axis", "iter_blocks"]


def first_axis(key: Any, n: int) -> tuple[np.ndarray, bool, tuple]:
    """``(indices, scalar, rest)`` of an index ``key`` into an array of length ``n``: the
    first axis' indices (any shape, negatives resolved, bounds checked), whether it was a
    scalar, and the key's remaining axes."""
    rest: tuple = ()
    if isinstance(key, tuple):
        key, rest = key[0], key[1:]
    scalar = False
    if isinstance(key, slice):
        idx = np.arange(*key.indices(n))
    elif isinstance(key, (int, np.integer)):
        idx, scalar = np.asarray([int(key)]), True
    else:
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean index of shape {idx.shape} on an axis of {n}")
            idx = np.nonzero(idx)[0]
        elif not np.issubdtype(idx.dtype, np.integer):
            raise IndexError(f"only integers, slices and integer arrays index time ({key!r})")
    idx = np.where(idx < 0, idx + n, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"time index out of range for {n} steps")
    return idx, scalar, rest


class StoreArray:
    """The committed fields of a store as a read-on-demand ``(T, V, H, W)`` float32 array.

    Args:
        store_url, storage_options: the store (re-opened in each process that reads it, so the
            array can be handed to data-loader workers).
        variables: the V variables, in order.
        n_time: committed steps (the store's commit).
        time_chunk: steps per store chunk (reads are whole chunks).
        cache_mb: the chunk cache's bound.
        max_read_mb: the largest single read; bigger ones raise :class:`DataError`.
    """

    def __init__(
        self,
        store_url: str,
        storage_options: dict[str, Any] | None,
        variables: list[str],
        n_time: int,
        grid: tuple[int, int],
        time_chunk: int,
        *,
        cache_mb: float = 256.0,
        max_read_mb: float = 2048.0,
    ):
        self.store_url = store_url
        self.storage_options = dict(storage_options or {})
        self.variables = list(variables)
        self.shape = (int(n_time), len(variables), int(grid[0]), int(grid[1]))
        self.time_chunk = max(int(time_chunk), 1)
        self.cache_bytes = int(cache_mb * 2**20)
        self.max_read_bytes = int(max_read_mb * 2**20)
        self.dtype = np.dtype(np.float32)
        self.reads = 0  # chunks read from the store (a measure of the sampling's locality)
        self._ds: Any = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # numpy-like surface ---------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return 4

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"StoreArray({self.store_url!r}, shape={self.shape}, chunk={self.time_chunk})"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_ds"], state["_cache"], state["_lock"] = None, OrderedDict(), None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        idx, scalar, rest = first_axis(key, self.shape[0])
        flat = idx.ravel()
        # the other axes are applied chunk by chunk: one variable of many steps holds only it
        probe = np.empty((1, *self.shape[1:]), np.bool_)[(slice(None), *rest)]
        need = flat.size * int(np.prod(probe.shape[1:])) * 4
        if need > self.max_read_bytes:
            raise DataError(
                f"reading {flat.size} steps of {self.store_url} at once ({need / 2**20:.1f} MiB) "
                f"exceeds the streaming bound ({self.max_read_bytes / 2**20:.1f} MiB, "
                "stream.max_read_mb): read it block by block, or lower the batch size"
            )
        out = np.empty((flat.size, *probe.shape[1:]), np.float32)
        chunk_of = flat // self.time_chunk
        for c in np.unique(chunk_of):
            sel = chunk_of == c
            out[sel] = self._chunk(int(c))[(flat[sel] - c * self.time_chunk, *rest)]
        res = out.reshape(*idx.shape, *probe.shape[1:])
        return res[0] if scalar else res

    # reading --------------------------------------------------------------------------
    def _open(self) -> Any:
        if self._ds is None:
            from wxmodels.data.store import Store

            ds = Store(self.store_url, self.storage_options).open(chunks=None)
            self._ds = ds[self.variables].transpose(TIME, LAT, LON)
        return self._ds

    def _chunk(self, c: int) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(c)
            if hit is not None:
                self._cache.move_to_end(c)
                return hit
        a = c * self.time_chunk
        b = min(a + self.time_chunk, self.shape[0])
        ds = self._open().isel({TIME: slice(a, b)})
        block = np.stack([np.asarray(ds[v].values, np.float32) for v in self.variables], axis=1)
        with self._lock:
            self.reads += 1
            self._cache[c] = block
            size = sum(x.nbytes for x in self._cache.values())
            while len(self._cache) > 1 and size > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                size -= old.nbytes
        return block

    def chunk_of(self, steps: np.ndarray) -> np.ndarray:
        """The store chunk of each step."""
        return np.asarray(steps) // self.time_chunk


def iter_blocks(data: Any, a: int, b: int, size: int | None = None) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` blocks covering ``[a, b)``, aligned to the store's chunks for a
    :class:`StoreArray` (whole part at once for an in-memory array)."""
    if not isinstance(data, StoreArray):
        if b > a:
            yield a, b
        return
    step = size or data.time_chunk
    lo = a
    while lo < b:
        hi = min(b, (lo // step + 1) * step)
        yield lo, hi
        lo = hi


class ClimArray:
    """The climatology at every step of a time axis ``(T, V, H, W)``, evaluated at the steps
    indexed (``clim_at(hours) -> (n, V, H, W)``)."""

    def __init__(
        self,
        clim_at: Callable[[np.ndarray], np.ndarray],
        hours: np.ndarray,
        nv: int,
        grid: tuple[int, int],
    ):
        self.clim_at = clim_at
        self.hours = np.asarray(hours)
        self.shape = (len(self.hours), nv, *grid)
        self.dtype = np.dtype(np.float32)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        idx, scalar, rest = first_axis(key, self.shape[0])
        flat = idx.ravel()
        uniq, inv = np.unique(flat, return_inverse=True)
        vals = np.asarray(self.clim_at(self.hours[uniq]), np.float32)[inv]
        res = vals.reshape(*idx.shape, *self.shape[1:])
        if scalar:
            res = res[0]
        return res[rest] if rest else res


class Anomalies:
    """``data - clim`` read at the indexed steps only (either may be lazy)."""

    def __init__(self, data: Any, clim: Any):
        self.data, self.clim = data, clim
        self.shape = tuple(data.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.data[key]) - np.asarray(self.clim[key])
