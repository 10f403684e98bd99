"""Low-level writes of the store's arrays: groups, truncation of uncommitted steps, step hashes,
statistics groups (a mixin of :class:`~wxmodels.data.store.Store`, used by its writers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr
import zarr
import zarr.api.asynchronous as zasync
from zarr.core.sync import sync as zsync

from wxmodels.data.commit import Commit
from wxmodels.data.stats import ClimAccumulator
from wxmodels.data.timeaxis import grid_hash
from wxmodels.errors import DataError, IngestError
from wxmodels.schema import LAT, LON, TIME
from wxmodels.utils import rm_tree

__all__ = ["ArrayIO", "array_of", "write_group"]

log = logging.getLogger(__name__)


def array_of(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (an error if it is a group)."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise DataError(f"{name} in {group.store_path} is not an array")
    return node


def write_group(
    url: str,
    arrays: Mapping[str, np.ndarray],
    *,
    storage_options: dict | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    raw: bool = False,
) -> None:
    """Write ``arrays`` as a new Zarr group at ``url`` (replacing one there), all arrays at
    once on zarr's I/O loop. ``raw``: no compression, one chunk per index of the first axis
    (for accumulators of float64 sums, which do not compress: encoding them cost more than
    writing them, and their chunks are written concurrently)."""

    def options(v: np.ndarray) -> dict:
        if not raw:
            return {}
        chunks = (1, *v.shape[1:]) if v.ndim > 1 and v.shape[0] > 1 else "auto"
        return {"compressors": None, "chunks": chunks}

    values = {k: np.asarray(v) for k, v in arrays.items()}

    async def write() -> None:
        g = await zasync.open_group(
            store=url, mode="w", storage_options=storage_options, zarr_format=3
        )
        await asyncio.gather(
            *(
                g.create_array(
                    k,
                    data=v,
                    dimension_names=(dims or {}).get(k),
                    overwrite=True,
                    # a new group: a chunk equal to the fill value is written, not deleted
                    # (deletes are batched requests that some S3 servers refuse)
                    config={"write_empty_chunks": True},
                    **options(v),
                )
                for k, v in values.items()
            )
        )

    zsync(write())


class ArrayIO:
    """Array-level writing helpers of :class:`~wxmodels.data.store.Store`."""

    # -- writing -------------------------------------------------------------------------
    def ensure_groups(self, *paths: str) -> None:
        for p in paths:
            zarr.open_group(
                self.sub_url(p), mode="a", storage_options=self.zarr_options, zarr_format=3
            )

    def _truncate_to(self, n: int) -> int:
        """Drop time steps beyond ``n`` left by an interrupted append; return how many."""
        dropped = 0
        group = zarr.open_group(
            self.url, mode="r+", storage_options=self.zarr_options, zarr_format=3
        )
        arrays = [(name, arr) for name, arr in group.arrays()]
        with contextlib.suppress(FileNotFoundError, zarr.errors.NodeTypeValidationError, KeyError):
            arrays.append(
                (
                    "aux/step_hash",
                    zarr.open_array(
                        self.sub_url("aux/step_hash"),
                        mode="r+",
                        storage_options=self.zarr_options,
                        zarr_format=3,
                    ),
                )
            )
        for name, arr in arrays:
            dims = getattr(arr.metadata, "dimension_names", None) or ()
            is_time = (dims and dims[0] == TIME) or name == "aux/step_hash"
            if is_time and arr.shape[0] > n:
                extra = arr.shape[0] - n
                dropped = max(dropped, extra)
                # keep the chunk objects beyond the new end (the next append overwrites them):
                # deleting them needs batched deletes that some S3 servers refuse
                zsync(arr._async_array.resize((n, *arr.shape[1:]), delete_outside_chunks=False))
                log.warning("%s: removed %d uncommitted steps of %s", self.url, extra, name)
        return dropped

    def write_stats(self, clim: ClimAccumulator, sequence: int) -> str:
        path = f"aux/stats/s{sequence:06d}"
        self.ensure_groups("aux", "aux/stats")
        write_group(
            self.sub_url(path), clim.to_arrays(), storage_options=self.zarr_options, raw=True
        )
        return path

    def drop_old_stats(self, keep: str | None) -> None:
        base = f"{self.root}/aux/stats"
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return
        for p in entries:
            name = p.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("s") and (keep is None or not keep.endswith(name)):
                rm_tree(self.fs, p)

    def _check_compatible(self, ds: xr.Dataset, commit: Commit) -> None:
        have = {str(v): ds[v].attrs.get("units", "") for v in ds.data_vars}
        if set(have) != set(commit.variables):
            missing = sorted(set(commit.variables) - set(have))
            extra = sorted(set(have) - set(commit.variables))
            raise IngestError(
                f"variables differ from the store's (missing: {missing or 'none'}, "
                f"extra: {extra or 'none'})"
            )
        bad = [v for v, u in have.items() if u != commit.variables[v]]
        if bad:
            raise IngestError(f"units differ from the store's for {bad}")
        if grid_hash(ds[LAT].values, ds[LON].values) != commit.grid:
            raise IngestError("the grid (lat/lon) differs from the store's")

    def _targets(self, variables: list[str]) -> list:
        """The Zarr arrays the write pass fills (xarray created them and wrote the coords)."""
        group = zarr.open_group(
            self.url, mode="r+", storage_options=self.zarr_options, zarr_format=3
        )
        return [group[v] for v in variables]

    def _write_hashes(self, hashes: np.ndarray, start: int) -> None:
        self.ensure_groups("aux")
        path = self.sub_url("aux/step_hash")
        try:
            arr = zarr.open_array(path, mode="r+", storage_options=self.zarr_options, zarr_format=3)
        except (FileNotFoundError, zarr.errors.NodeTypeValidationError, KeyError):
            arr = zarr.create_array(
                path,
                shape=(0,),
                chunks=(4096,),
                dtype="uint64",
                storage_options=self.zarr_options,
                zarr_format=3,
                dimension_names=(TIME,),
                overwrite=True,
            )
        if arr.shape[0] != start:
            zsync(arr._async_array.resize((start,), delete_outside_chunks=False))
        arr.resize((start + len(hashes),))
        arr[start:] = hashes
