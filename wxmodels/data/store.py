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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.core.sync import sync as zsync

from wxmodels.data import writepass
from wxmodels.data.commit import Commit
from wxmodels.data.stats import ClimAccumulator
from wxmodels.errors import DataError, GapError, IngestError, LockError
from wxmodels.faults import crash_point
from wxmodels.locks import FileLock, LeaseLock, Lock
from wxmodels.paths import claim, entries, marker_bytes, write_bytes_atomic
from wxmodels.schema import LAT, LON, TIME, VARIABLES
from wxmodels.utils import rm_tree

__all__ = ["COMMIT_KEY", "AppendReport", "Commit", "Store"]

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
class AppendReport:
    """What one append did (small and JSON-able)."""

    store: str
    appended: int
    skipped: int
    start: str | None
    end: str | None
    version: str
    new_range: tuple[str, str] | None = None
    revised: list[str] = field(default_factory=list)
    gap: str | None = None
    """Set when the source continues after a gap: the steps after it wait for the missing ones."""
    missing: list[str] = field(default_factory=list)
    """``variable@time`` of appended steps that are NaN inside the domain (reported, kept)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _grid_hash(lat: np.ndarray, lon: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256()
    h.update(np.asarray(lat, np.float64).round(6).tobytes())
    h.update(np.asarray(lon, np.float64).round(6).tobytes())
    return h.hexdigest()[:16]


def _seconds(times: np.ndarray) -> np.ndarray:
    return np.asarray(times).astype("datetime64[s]").astype(np.int64)


def infer_step_s(times: np.ndarray) -> int:
    """The most common spacing of ``times`` in seconds; duplicates/disorder raise."""
    d = np.diff(_seconds(times))
    if np.any(d <= 0):
        raise DataError("time steps are duplicated or not increasing")
    vals, counts = np.unique(d, return_counts=True)
    return int(vals[np.argmax(counts)])


def contiguous(times: np.ndarray, first: np.datetime64, step_s: int) -> int:
    """How many leading ``times`` follow ``first`` at exactly ``step_s`` spacing."""
    t = _seconds(times)
    expected = np.datetime64(first, "s").astype(np.int64) + step_s * np.arange(len(t))
    bad = np.nonzero(t != expected)[0]
    return int(bad[0]) if len(bad) else len(t)


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


class Store:
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

    def open(self, *, chunks: dict | str | None = "auto") -> xr.Dataset:
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

    def _open_by_array(self, chunks: dict | str | None, n_time: int) -> xr.Dataset:
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
            {k: g[k][...] for k in ("xtx", "xty", "n", "span", "harmonics")}
        )

    def step_hashes(self, commit: Commit | None = None) -> np.ndarray:
        commit = commit or self.read_commit()
        arr = zarr.open_array(
            self.sub_url("aux/step_hash"),
            mode="r",
            storage_options=self.zarr_options,
            zarr_format=3,
        )
        return np.asarray(arr[: commit.n_time])

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
        g = zarr.open_group(
            self.sub_url(path), mode="w", storage_options=self.zarr_options, zarr_format=3
        )
        for k, v in clim.to_arrays().items():
            g.create_array(k, data=np.asarray(v), overwrite=True)
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
        have = {v: ds[v].attrs.get("units", "") for v in ds.data_vars}
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
        if _grid_hash(ds[LAT].values, ds[LON].values) != commit.grid:
            raise IngestError("the grid (lat/lon) differs from the store's")

    def append(
        self,
        ds: xr.Dataset,
        *,
        time_chunk: int = 24,
        source: str = "",
        max_nan_fraction: float = 1.0,
        inputs: dict[str, dict] | None = None,
        quarantine: dict[str, dict] | None = None,
        static: dict[str, np.ndarray] | None = None,
    ) -> AppendReport:
        """Add what ``ds`` has that the store lacks, in one pass over the new data.

        * steps already committed are compared by content hash: identical ones are skipped,
          different ones are *revisions*, rewritten in place (see the module docstring);
        * new steps are appended as far as they are contiguous: a gap is reported in ``gap`` and
          the steps after it wait for the missing ones (never filled or interpolated);
        * values are validated in the same pass as the write (ranges, NaNs inside the domain);
          a failure raises :class:`~wxmodels.errors.DataError` and commits nothing;
        * ``inputs`` / ``quarantine`` are recorded in the commit's ledger.
        """
        with self.writing():
            return self._append(
                ds,
                time_chunk=time_chunk,
                source=source,
                max_nan_fraction=max_nan_fraction,
                inputs=inputs,
                quarantine=quarantine,
                static=static,
            )

    def _append(
        self, ds, *, time_chunk, source, max_nan_fraction, inputs, quarantine, static
    ) -> AppendReport:
        commit = self.read_commit()
        if commit is not None and commit.revision is not None:
            commit = self._finish_revision(commit)
        if ds.sizes.get(TIME, 0) == 0:
            raise IngestError("nothing to ingest: the source has no time steps")
        if commit is not None:
            self._check_compatible(ds, commit)
        ds = ds[sorted(ds.data_vars)] if commit is None else ds[list(commit.variables)]
        times = ds[TIME].values
        if len(times) > 1:
            infer_step_s(times)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if commit is None:
            return self._first_write(
                ds,
                time_chunk=time_chunk,
                source=source,
                now=now,
                max_nan_fraction=max_nan_fraction,
                inputs=inputs or {},
                quarantine=quarantine or {},
                static=static or {},
            )
        step_s = round(commit.step_hours * 3600)
        end = np.datetime64(pd.Timestamp(commit.end))
        old = ds.sel({TIME: ds[TIME] <= end})
        new = ds.sel({TIME: ds[TIME] > end})
        revised: list[str] = []
        if old.sizes[TIME]:
            commit, revised = self._apply_revisions(
                old, commit, now=now, source=source, max_nan_fraction=max_nan_fraction
            )
        skipped = old.sizes[TIME] - len(revised)
        n_new, gap = 0, None
        if new.sizes[TIME]:
            expected = end + np.timedelta64(step_s, "s")
            n_new = contiguous(new[TIME].values, expected, step_s)
            if n_new == 0:
                raise GapError(
                    f"gap in time: the store ends at {commit.end}, the source continues at "
                    f"{pd.Timestamp(new[TIME].values[0])} (expected {pd.Timestamp(expected)});"
                    " nothing was written"
                )
            gap = self._gap_message(new[TIME].values, n_new)
        missing: list[str] = []
        if n_new:
            commit, missing = self._append_new(
                new.isel({TIME: slice(0, n_new)}),
                commit,
                time_chunk=time_chunk,
                now=now,
                source=source,
                gap=gap,
                max_nan_fraction=max_nan_fraction,
            )
        if inputs or quarantine:
            commit.inputs.update(inputs or {})
            for k in inputs or {}:
                commit.quarantine.pop(k, None)
            commit.quarantine.update(quarantine or {})
            commit.sequence += 1
            self.write_commit(commit)
        rng = None
        if n_new:
            t = new[TIME].values
            rng = (str(pd.Timestamp(t[0])), str(pd.Timestamp(t[n_new - 1])))
        return AppendReport(
            self.url,
            n_new,
            skipped,
            commit.start,
            commit.end,
            commit.version,
            rng,
            revised,
            gap,
            missing,
        )

    @staticmethod
    def _gap_message(times: np.ndarray, n: int) -> str | None:
        if n >= len(times):
            return None
        msg = (
            f"gap after {pd.Timestamp(times[n - 1])}: the source continues at "
            f"{pd.Timestamp(times[n])}; {len(times) - n} later steps wait for the missing ones"
        )
        log.warning(msg)
        return msg

    # -- first write / append ------------------------------------------------------------
    def _first_write(
        self, ds, *, time_chunk, source, now, max_nan_fraction, inputs, quarantine, static
    ) -> AppendReport:
        times = ds[TIME].values
        if len(times) < 2:
            raise IngestError("the first ingest needs at least two time steps")
        step_s = infer_step_s(times)
        n = contiguous(times, times[0], step_s)
        if n < 2:
            raise IngestError(
                f"the source's first steps are not evenly spaced "
                f"({pd.Timestamp(times[0])}, {pd.Timestamp(times[1])})"
            )
        gap = self._gap_message(times, n)
        ds = ds.isel({TIME: slice(0, n)})
        if [e for e in entries(self.fs, self.root) if e != _OWN]:
            log.warning("%s: removing an uncommitted first write", self.url)
            self._clear_uncommitted()
        chunked = ds.chunk({TIME: time_chunk, LAT: -1, LON: -1})
        encoding = {v: {"chunks": (time_chunk, ds.sizes[LAT], ds.sizes[LON])} for v in ds.data_vars}
        # metadata and coordinates only: the write pass writes the data
        chunked.to_zarr(
            self.url,
            mode="a",  # the claimed, emptied path holds only _wxc (marker, lock)
            zarr_format=3,
            consolidated=False,
            encoding=encoding,
            storage_options=self.zarr_options,
            compute=False,
        )
        try:
            res = writepass.run(
                chunked, self._targets(list(chunked.data_vars)), 0, valid=None, prev=None
            )
            shape = (ds.sizes[LAT], ds.sizes[LON])
            valid = res.valid_from_data(shape)
            missing = res.check(
                list(ds.data_vars),
                valid,
                ds[TIME].values,
                max_nan_fraction=max_nan_fraction,
                where=source or self.url,
            )
        except Exception:
            self._clear_uncommitted()  # nothing was committed: leave no debris
            raise
        self._write_hashes(res.hashes, 0)
        sg = zarr.open_group(
            self.sub_url("static"), mode="w", storage_options=self.zarr_options, zarr_format=3
        )
        sg.create_array("valid_mask", data=valid, dimension_names=(LAT, LON))
        for name, arr in (static or {}).items():
            sg.create_array(name, data=np.asarray(arr, np.float32), dimension_names=(LAT, LON))
        sg.create_array(LAT, data=ds[LAT].values, dimension_names=(LAT,))
        sg.create_array(LON, data=ds[LON].values, dimension_names=(LON,))
        t0, t1 = str(pd.Timestamp(times[0])), str(pd.Timestamp(times[n - 1]))
        commit = Commit(
            n_time=n,
            start=t0,
            end=t1,
            step_hours=step_s / 3600.0,
            variables={v: ds[v].attrs.get("units", "") for v in ds.data_vars},
            grid=_grid_hash(ds[LAT].values, ds[LON].values),
            shape=list(shape),
            history=[
                {
                    "at": now,
                    "appended": n,
                    "source": source,
                    "range": [t0, t1],
                    **({"gap": gap} if gap else {}),
                    **({"missing": missing} if missing else {}),
                }
            ],
            inputs=dict(inputs),
            quarantine=dict(quarantine),
        )
        moments = commit.get_moments()
        res.add_to(moments, None)
        commit.moments = asdict(moments)
        commit.stats_group = self.write_stats(res.clim, commit.sequence)
        crash_point("append:after-data")
        self.write_commit(commit)
        return AppendReport(self.url, n, 0, t0, t1, commit.version, (t0, t1), [], gap, missing)

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

    def _append_new(self, new, commit, *, time_chunk, now, source, gap, max_nan_fraction):
        self._truncate_to(commit.n_time)
        head = (-commit.n_time) % time_chunk or time_chunk
        n_new = new.sizes[TIME]
        sizes = [min(head, n_new)]
        while sum(sizes) < n_new:
            sizes.append(min(time_chunk, n_new - sum(sizes)))
        new = new.chunk({TIME: tuple(sizes), LAT: -1, LON: -1})
        for v in new.data_vars:
            new[v].encoding = {}
        new.to_zarr(  # resizes the arrays, writes the new times; the write pass the data
            self.url,
            append_dim=TIME,
            zarr_format=3,
            consolidated=False,
            storage_options=self.zarr_options,
            compute=False,
        )
        valid = self.static()["valid_mask"].values
        prev = self.open(chunks=None).isel({TIME: -1})
        prev = np.stack([prev[v].values for v in commit.variables])
        res = writepass.run(
            new, self._targets(list(new.data_vars)), commit.n_time, valid=valid, prev=prev
        )
        try:
            missing = res.check(
                list(commit.variables),
                valid,
                new[TIME].values,
                max_nan_fraction=max_nan_fraction,
                where=source or self.url,
            )
        except DataError:
            self._truncate_to(commit.n_time)
            raise
        self._write_hashes(res.hashes, commit.n_time)
        moments = commit.get_moments()
        res.add_to(moments, prev)
        clim = self.read_clim(commit)
        if clim is None:
            clim = res.clim
        else:
            clim.merge(res.clim)
        t = new[TIME].values
        new_start, new_end = str(pd.Timestamp(t[0])), str(pd.Timestamp(t[-1]))
        commit.n_time += n_new
        commit.end = new_end
        commit.sequence += 1
        commit.moments = asdict(moments)
        old_stats = commit.stats_group
        commit.stats_group = self.write_stats(clim, commit.sequence)
        commit.history.append(
            {
                "at": now,
                "appended": n_new,
                "source": source,
                "range": [new_start, new_end],
                **({"gap": gap} if gap else {}),
                **({"missing": missing} if missing else {}),
            }
        )
        crash_point("append:after-data")
        self.write_commit(commit)
        if old_stats:
            self.drop_old_stats(commit.stats_group)
        return commit, missing

    # -- revisions -----------------------------------------------------------------------
    def _apply_revisions(
        self, old: xr.Dataset, commit: Commit, *, now: str, source: str, max_nan_fraction: float
    ) -> tuple[Commit, list[str]]:
        from wxmodels.data import revise

        return revise.apply(
            self, old, commit, now=now, source=source, max_nan_fraction=max_nan_fraction
        )

    def _finish_revision(self, commit: Commit) -> Commit:
        from wxmodels.data import revise

        return revise.roll_forward(self, commit)

    def _overlay_backup(self, ds: xr.Dataset, intent: dict[str, Any]) -> xr.Dataset:
        from wxmodels.data import revise

        return revise.overlay(self, ds, intent)
