"""The canonical Zarr store: append-only along time, with an explicit, atomic commit record.

Layout (all plain Zarr v3; xarray opens the root as the dataset)::

    <store>/<variable>, time, lat, lon      the data, chunked uniformly in time
    <store>/static/valid_mask, ...           static fields (lat, lon)
    <store>/aux/step_hash                    a content hash per time step (revision detection)
    <store>/aux/stats/s<sequence>/...        climatology accumulators of a commit
    <store>/aux/revision/{backup,new}        staging of an in-flight revision
    <store>/_wxc/zarr.json                   the commit record (attributes of an empty group)

A Zarr append is not atomic (a crash after the resize leaves fill values), so the commit record
is written last, atomically (rename on local disk, a single PUT on object storage). Readers see
exactly the committed steps; anything beyond them is the debris of an interrupted write, removed
by the next append. Revisions (steps whose values changed, as ERA5T becomes ERA5) are rewritten
in place through an intent log: the old and new values are staged first, the intent committed,
then the region written; a reader during (or after a crash in) the rewrite gets the old values
from the staging, and the next run rolls the revision forward.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import numpy as np
import xarray as xr
import zarr

from wxmodels.data.appending import Appending, AppendReport
from wxmodels.data.arrayio import array_of
from wxmodels.data.commit import Commit
from wxmodels.data.stats import ClimAccumulator
from wxmodels.data.timeaxis import contiguous, infer_step_s
from wxmodels.errors import DataError, LockError
from wxmodels.locks import FileLock, LeaseLock, Lock
from wxmodels.paths import claim, entries, marker_bytes, write_bytes_atomic
from wxmodels.schema import LAT, LON, TIME, VARIABLES
from wxmodels.utils import rm_tree

__all__ = [
    "COMMIT_KEY",
    "AppendReport",
    "Commit",
    "Store",
    "StoreStatistics",
    "contiguous",
    "infer_step_s",
]

log = logging.getLogger(__name__)

COMMIT_KEY = "_wxc/zarr.json"
"""The commit record; written first as the store's marker (``wxc_owner``, no commit yet)."""
_OWN = "_wxc"
_LEGACY = {"zarr.json", "aux", "static", TIME, LAT, LON, *VARIABLES}


def _is_store_marker(data: bytes) -> bool:
    try:
        attrs = json.loads(data).get("attributes", {})
    except (ValueError, AttributeError):
        return False
    return isinstance(attrs, dict) and ("wxc_owner" in attrs or "wxc_commit" in attrs)


def _store_marker() -> bytes:
    owner = json.loads(marker_bytes("store"))
    return json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": {"wxc_owner": owner}}
    ).encode()


@dataclass
class StoreStatistics:
    """Statistics of a store version.

    Attributes:
        variables: store order of the per-variable statistics.
        moments: running sums (see :class:`~wxmodels.data.stats.Moments`).
        clim: the climatology accumulator (``None`` for stores written before statistics).
        version: the store version they belong to.
    """

    variables: list[str]
    moments: Any
    clim: ClimAccumulator | None
    version: str

    def _order(self, variables: list[str] | None) -> list[int]:
        variables = variables or self.variables
        missing = [v for v in variables if v not in self.variables]
        if missing:
            raise DataError(f"the store has no statistics for {missing}")
        return [self.variables.index(v) for v in variables]

    def normalisation(self, variables: list[str] | None = None) -> dict[str, list[float]]:
        """``mean``, ``std``, ``tendency_std`` in the order of ``variables``."""
        idx = self._order(variables)
        full = self.moments.normalisation()
        return {k: [full[k][i] for i in idx] for k in full}

    def climatology(
        self, hours: np.ndarray, variables: list[str] | None = None, valid: np.ndarray | None = None
    ) -> np.ndarray:
        """Climatology ``(T, V, H, W)`` at ``hours`` (hours since 1970) for ``variables``."""
        if self.clim is None:
            raise DataError("this store has no climatology; re-ingest it")
        return self.clim.evaluate(hours, valid)[:, self._order(variables)]


class Store(Appending):
    """A canonical Zarr v3 store at a local path or an fsspec URL (``s3://...``).

    Writers (:meth:`append`, and ingest around it) hold :meth:`writing`: the path is claimed
    first (written only when absent, empty or already a wxcompress store), then the store's
    lock is taken (waiting up to ``lock_timeout`` seconds for another writer).
    """

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        lock_timeout: float = 600.0,
        lease_s: float = 60.0,
    ):
        if not str(url).strip():
            raise DataError("the store path is empty")
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self._local = "file" in self.fs.protocol
        self.lock_timeout = lock_timeout
        self.lease_s = lease_s
        self._lock: Lock | None = None

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def zarr_options(self) -> dict[str, Any] | None:
        return self.storage_options or None

    def sub_url(self, path: str) -> str:
        return f"{self.url}/{path}"

    # -- commit record -------------------------------------------------------------------
    def read_commit(self) -> Commit | None:
        """The last commit, or ``None`` when nothing was ever committed."""
        if not self._local:
            self.fs.invalidate_cache()
        try:
            with self.fs.open(f"{self.root}/{COMMIT_KEY}", "rb") as f:
                obj = json.loads(f.read())
        except FileNotFoundError:
            return None
        attrs = obj.get("attributes", {})
        if "wxc_commit" not in attrs:  # claimed, nothing committed yet
            return None
        try:
            return Commit.from_json(attrs["wxc_commit"])
        except (ValueError, TypeError) as e:
            raise DataError(f"{self.url}: unreadable commit record ({e})") from e

    def write_commit(self, commit: Commit) -> None:
        """Replace the commit record (atomically: a rename locally, one PUT on object
        storage). Only a writer holding :meth:`writing` may; a lease lost meanwhile raises
        :class:`~wxmodels.errors.LockError` and nothing is committed."""
        if self._lock is None:
            raise LockError(f"{self.url}: commit outside `Store.writing()`")
        self._lock.check()
        owner = json.loads(_store_marker())["attributes"]["wxc_owner"]
        with contextlib.suppress(FileNotFoundError, ValueError):
            owner = json.loads(self.fs.cat_file(f"{self.root}/{COMMIT_KEY}"))["attributes"].get(
                "wxc_owner", owner
            )
        data = json.dumps(
            {
                "zarr_format": 3,
                "node_type": "group",
                "attributes": {"wxc_owner": owner, "wxc_commit": commit.to_json()},
            },
            indent=1,
        ).encode()
        write_bytes_atomic(self.fs, f"{self.root}/{COMMIT_KEY}", data)

    # -- ownership and the one-writer lock -------------------------------------------------
    def claim(self) -> None:
        """Make sure the store's path is absent, empty or already a wxcompress store (marked
        first); anything else raises :class:`~wxmodels.errors.PathError`."""
        claim(
            self.fs,
            self.root,
            url=self.url,
            kind="store",
            marker=COMMIT_KEY,
            content=_store_marker,
            is_ours=_is_store_marker,
            transient=(_OWN,),
            legacy=lambda names: "zarr.json" in names and set(names) <= _LEGACY,
        )

    def lock(self) -> Lock:
        """This store's writer lock (see :mod:`wxmodels.locks`)."""
        what = f"store {self.url}"
        if self._local:
            return FileLock(f"{self.root}/{_OWN}/lock", what, timeout=self.lock_timeout)
        return LeaseLock(
            self.fs,
            f"{self.root}/{_OWN}/lease",
            what,
            timeout=self.lock_timeout,
            ttl=self.lease_s,
        )

    @contextlib.contextmanager
    def writing(self):
        """Claim the path and hold the one-writer lock; re-entrant."""
        if self._lock is not None:
            with self._lock:
                yield self
            return
        self.claim()
        lock = self.lock()
        with lock:
            self._lock = lock
            try:
                yield self
            finally:
                self._lock = None

    def _clear_uncommitted(self) -> None:
        """Remove what an interrupted first write left: everything but the marker and lock
        (only ever inside a claimed store, under its lock)."""
        for name in entries(self.fs, self.root):
            if name != _OWN:
                rm_tree(self.fs, f"{self.root}/{name}")

    # -- reading -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.read_commit() is not None

    def version(self) -> str | None:
        c = self.read_commit()
        return c.version if c else None

    def open(self, *, chunks: dict | Literal["auto"] | None = "auto") -> xr.Dataset:
        """The committed dataset (lazy); ``attrs['wxc_store_version']`` identifies it."""
        commit = self.read_commit()
        if commit is None:
            raise DataError(f"store {self.url} is empty: run `wxc ingest` first")
        try:
            ds = xr.open_zarr(
                self.url,
                storage_options=self.zarr_options,
                consolidated=False,
                chunks=chunks,
                zarr_format=3,
            )
        except ValueError as e:
            if "conflicting sizes" not in str(e):
                raise
            # a writer was stopped between resizing its arrays: beyond the commit their lengths
            # disagree, which xarray refuses; read each array alone and cut it to the commit
            ds = self._open_by_array(chunks, commit.n_time)
        ds = ds.isel({TIME: slice(0, commit.n_time)})
        if commit.revision is not None:
            ds = self._overlay_backup(ds, commit.revision)
        ds.attrs["wxc_store_version"] = commit.version
        ds.attrs["wxc_store_url"] = self.url
        return ds

    def _open_by_array(self, chunks: dict | Literal["auto"] | None, n_time: int) -> xr.Dataset:
        group = zarr.open_group(
            self.url, mode="r", storage_options=self.zarr_options, zarr_format=3
        )
        names = sorted(group.array_keys())
        parts = []
        for name in names:
            one = xr.open_zarr(
                self.url,
                storage_options=self.zarr_options,
                consolidated=False,
                chunks=chunks,
                zarr_format=3,
                drop_variables=[x for x in names if x != name],
            )
            if TIME in one.dims:
                one = one.isel({TIME: slice(0, n_time)})
            parts.append(one)
        return xr.merge(parts, compat="override", join="override", combine_attrs="override")

    def static(self) -> xr.Dataset:
        """Static fields on the store's grid (``valid_mask`` always; others when ingested)."""
        if self.read_commit() is None:
            raise DataError(f"store {self.url} is empty: run `wxc ingest` first")
        return xr.open_zarr(
            self.url,
            group="static",
            storage_options=self.zarr_options,
            consolidated=False,
            zarr_format=3,
        ).load()

    def statistics(self) -> StoreStatistics:
        """Normalisation and climatology of the committed data (versioned with it)."""
        commit = self.read_commit()
        if commit is None:
            raise DataError(f"store {self.url} is empty: run `wxc ingest` first")
        return StoreStatistics(
            list(commit.variables), commit.get_moments(), self.read_clim(commit), commit.version
        )

    def read_clim(self, commit: Commit) -> ClimAccumulator | None:
        if not commit.stats_group:
            return None
        g = zarr.open_group(
            self.sub_url(commit.stats_group),
            mode="r",
            storage_options=self.zarr_options,
            zarr_format=3,
        )
        return ClimAccumulator.from_arrays(
            {k: np.asarray(array_of(g, k)[...]) for k in ("xtx", "xty", "n", "span", "harmonics")}
        )

    def step_hashes(self, commit: Commit | None = None) -> np.ndarray:
        commit = commit or self.read_commit()
        if commit is None:
            raise DataError(f"store {self.url} is empty: run `wxc ingest` first")
        arr = zarr.open_array(
            self.sub_url("aux/step_hash"),
            mode="r",
            storage_options=self.zarr_options,
            zarr_format=3,
        )
        return np.asarray(arr[: commit.n_time])
