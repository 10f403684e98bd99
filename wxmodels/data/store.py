"""The canonical Zarr store: append-only along time, with an explicit commit record.

A Zarr append is not atomic (a crash after the resize leaves fill values), so the store keeps a
small commit record, written last and atomically (rename on local disk, a single PUT on object
storage). The record is the attributes of an empty sub-group, ``_wxc`` (its ``zarr.json``), so
the store stays a plain Zarr v3 hierarchy that any reader opens. Readers see exactly the
committed time steps; anything beyond them is the debris of an interrupted write, removed by the
next append before it writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from wxmodels.errors import DataError, IngestError
from wxmodels.schema import LAT, LON, TIME

__all__ = ["COMMIT_KEY", "AppendReport", "Commit", "Store"]

log = logging.getLogger(__name__)

COMMIT_KEY = "_wxc/zarr.json"
COMMIT_VERSION = 1


@dataclass
class Commit:
    """What the store holds, as last committed.

    Attributes:
        n_time: committed time steps (readers see ``time[:n_time]``).
        start, end: first and last committed time (ISO 8601).
        step_hours: time step.
        variables: ``{name: units}``.
        grid: hash of the lat/lon coordinates.
        shape: ``[n_lat, n_lon]``.
        sequence: commit counter (1 for the first write).
        history: one entry per commit: what was appended or revised, when, from what.
    """

    n_time: int
    start: str
    end: str
    step_hours: float
    variables: dict[str, str]
    grid: str
    shape: list[int]
    sequence: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def version(self) -> str:
        """Content identifier of the committed store: time range, schema, grid and revisions."""
        body = {
            "range": [self.start, self.end, self.n_time, self.step_hours],
            "variables": self.variables,
            "grid": self.grid,
            "revisions": sum(len(h.get("revised", [])) for h in self.history),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def times(self) -> pd.DatetimeIndex:
        return pd.date_range(
            self.start, periods=self.n_time, freq=pd.Timedelta(hours=self.step_hours)
        )


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
    gap: str | None = None
    """Set when the source continues after a gap: the steps after it wait for the missing ones."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _grid_hash(lat: np.ndarray, lon: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(lat, np.float64).round(6).tobytes())
    h.update(np.asarray(lon, np.float64).round(6).tobytes())
    return h.hexdigest()[:16]


def _diffs_s(times: np.ndarray) -> np.ndarray:
    return np.diff(np.asarray(times).astype("datetime64[s]").astype(np.int64))


def _infer_step_s(times: np.ndarray) -> int:
    """The most common positive spacing of ``times`` (seconds)."""
    d = _diffs_s(times)
    if np.any(d <= 0):
        raise DataError("time steps are duplicated or not increasing")
    vals, counts = np.unique(d, return_counts=True)
    return int(vals[np.argmax(counts)])


def _contiguous(times: np.ndarray, first: np.datetime64, step_s: int) -> int:
    """How many leading ``times`` follow ``first`` at exactly ``step_s`` spacing."""
    t = np.asarray(times).astype("datetime64[s]").astype(np.int64)
    expected = np.datetime64(first, "s").astype(np.int64) + step_s * np.arange(len(t))
    bad = np.nonzero(t != expected)[0]
    return int(bad[0]) if len(bad) else len(t)


class Store:
    """A canonical Zarr v3 store at a local path or an fsspec URL (``s3://...``)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- commit record -------------------------------------------------------------------
    def read_commit(self) -> Commit | None:
        """The last commit, or ``None`` when nothing was ever committed."""
        path = f"{self.root}/{COMMIT_KEY}"
        try:
            with self.fs.open(path, "rb") as f:
                obj = json.loads(f.read())
        except FileNotFoundError:
            return None
        obj = obj.get("attributes", {}).get("wxc_commit", {})
        if obj.get("_version") != COMMIT_VERSION:
            raise DataError(f"{self.url}: commit record version {obj.get('_version')} unknown")
        return Commit(**obj["_data"])

    def _write_commit(self, commit: Commit) -> None:
        record = {"_type": "Commit", "_version": COMMIT_VERSION, "_data": asdict(commit)}
        data = json.dumps(
            {"zarr_format": 3, "node_type": "group", "attributes": {"wxc_commit": record}}, indent=1
        ).encode()
        path = f"{self.root}/{COMMIT_KEY}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol:
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:  # object storage: a single PUT replaces the object atomically
            self.fs.pipe_file(path, data)
            self.fs.invalidate_cache()

    # -- reading -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.read_commit() is not None

    def open(self, *, chunks: dict | str | None = "auto") -> xr.Dataset:
        """The committed dataset (lazy); ``attrs['wxc_store_version']`` identifies it."""
        commit = self.read_commit()
        if commit is None:
            raise DataError(f"store {self.url} is empty: run `wxc ingest` first")
        ds = xr.open_zarr(
            self.url,
            storage_options=self.storage_options or None,
            consolidated=False,
            chunks=chunks,
            zarr_format=3,
        )
        ds = ds.isel({TIME: slice(0, commit.n_time)})
        ds.attrs["wxc_store_version"] = commit.version
        ds.attrs["wxc_store_url"] = self.url
        return ds

    def version(self) -> str | None:
        c = self.read_commit()
        return c.version if c else None

    # -- writing -------------------------------------------------------------------------
    def _truncate_to(self, n: int) -> int:
        """Drop time steps beyond ``n`` left by an interrupted append; return how many."""
        group = zarr.open_group(
            self.url, mode="r+", storage_options=self.storage_options or None, zarr_format=3
        )
        dropped = 0
        for name, arr in group.arrays():
            dims = getattr(arr.metadata, "dimension_names", None) or ()
            if dims and dims[0] == TIME and arr.shape[0] > n:
                extra = arr.shape[0] - n
                dropped = max(dropped, extra)
                arr.resize((n, *arr.shape[1:]))
                log.warning("%s: removed %d uncommitted steps of %s", self.url, extra, name)
        return dropped

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

    def append(self, ds: xr.Dataset, *, time_chunk: int = 24, source: str = "") -> AppendReport:
        """Append the steps of ``ds`` that are newer than the committed end.

        Steps already committed are compared with the store: identical ones are skipped; a
        step whose values differ raises :class:`IngestError` (it is a revision). New steps are
        appended only as far as they are contiguous: a gap is reported (``gap``) and the steps
        after it wait for the missing ones; it is never filled or interpolated.
        """
        if ds.sizes.get(TIME, 0) == 0:
            raise IngestError("nothing to ingest: the source has no time steps")
        times = ds[TIME].values
        if len(times) > 1:
            _infer_step_s(times)  # duplicates / disorder
        commit = self.read_commit()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if commit is None:
            if len(times) < 2:
                raise IngestError("the first ingest needs at least two time steps")
            step_s = _infer_step_s(times)
            n = _contiguous(times, times[0], step_s)
            if n < 2:
                raise IngestError(
                    f"the source's first steps are not evenly spaced "
                    f"({pd.Timestamp(times[0])}, {pd.Timestamp(times[1])})"
                )
            gap = self._gap_message(times, n)
            first = ds.isel({TIME: slice(0, n)})
            chunked = first.chunk({TIME: time_chunk, LAT: -1, LON: -1})
            encoding = {
                v: {"chunks": (time_chunk, ds.sizes[LAT], ds.sizes[LON])} for v in ds.data_vars
            }
            if self.fs.exists(self.root):
                log.warning("%s: removing an uncommitted first write", self.url)
                self.fs.rm(self.root, recursive=True)
            chunked.to_zarr(
                self.url,
                mode="w-",
                zarr_format=3,
                consolidated=False,
                encoding=encoding,
                storage_options=self.storage_options or None,
            )
            t0, t1 = str(pd.Timestamp(times[0])), str(pd.Timestamp(times[n - 1]))
            commit = Commit(
                n_time=n,
                start=t0,
                end=t1,
                step_hours=step_s / 3600.0,
                variables={v: ds[v].attrs.get("units", "") for v in ds.data_vars},
                grid=_grid_hash(ds[LAT].values, ds[LON].values),
                shape=[ds.sizes[LAT], ds.sizes[LON]],
                history=[
                    {
                        "at": now,
                        "appended": n,
                        "source": source,
                        "range": [t0, t1],
                        **({"gap": gap} if gap else {}),
                    }
                ],
            )
            self._write_commit(commit)
            return AppendReport(self.url, n, 0, t0, t1, commit.version, (t0, t1), gap)

        self._check_compatible(ds, commit)
        step_s = round(commit.step_hours * 3600)
        end = np.datetime64(pd.Timestamp(commit.end))
        old = ds.sel({TIME: ds[TIME] <= end})
        new = ds.sel({TIME: ds[TIME] > end})
        skipped = old.sizes[TIME]
        if skipped:
            self._check_identical(old, commit)
        if new.sizes[TIME] == 0:
            return AppendReport(self.url, 0, skipped, commit.start, commit.end, commit.version)
        expected = end + np.timedelta64(step_s, "s")
        n_new = _contiguous(new[TIME].values, expected, step_s)
        if n_new == 0:
            raise IngestError(
                f"gap in time: the store ends at {commit.end}, the source continues at "
                f"{pd.Timestamp(new[TIME].values[0])} (expected {pd.Timestamp(expected)}); "
                "nothing was written"
            )
        gap = self._gap_message(new[TIME].values, n_new)
        new = new.isel({TIME: slice(0, n_new)})
        self._truncate_to(commit.n_time)
        # align dask chunks with the zarr chunks: fill the store's last partial chunk first
        head = (-commit.n_time) % time_chunk or time_chunk
        sizes = [min(head, n_new)]
        while sum(sizes) < n_new:
            sizes.append(min(time_chunk, n_new - sum(sizes)))
        new = new.chunk({TIME: tuple(sizes), LAT: -1, LON: -1})
        for v in new.data_vars:
            new[v].encoding = {}
        new.to_zarr(
            self.url,
            append_dim=TIME,
            zarr_format=3,
            consolidated=False,
            storage_options=self.storage_options or None,
        )
        new_start = str(pd.Timestamp(new[TIME].values[0]))
        new_end = str(pd.Timestamp(new[TIME].values[-1]))
        commit.n_time += n_new
        commit.end = new_end
        commit.sequence += 1
        commit.history.append(
            {
                "at": now,
                "appended": n_new,
                "source": source,
                "range": [new_start, new_end],
                **({"gap": gap} if gap else {}),
            }
        )
        self._write_commit(commit)
        return AppendReport(
            self.url,
            n_new,
            skipped,
            commit.start,
            commit.end,
            commit.version,
            (new_start, new_end),
            gap,
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

    def _check_identical(self, old: xr.Dataset, commit: Commit) -> None:
        stored = self.open(chunks=None)
        times = old[TIME].values
        missing = ~np.isin(times, stored[TIME].values)
        if missing.any():
            raise IngestError(
                f"{int(missing.sum())} source steps fall inside the committed range but are not "
                f"on its time axis (first: {pd.Timestamp(times[missing][0])})"
            )
        here = stored.sel({TIME: times})
        for v in old.data_vars:
            a = np.asarray(old[v].values)
            b = np.asarray(here[v].values)
            if not np.array_equal(a, b, equal_nan=True):
                bad = ~np.all(np.isclose(a, b, equal_nan=True, rtol=0, atol=0), axis=(1, 2))
                raise IngestError(
                    f"{v}: {int(bad.sum())} already-committed steps have different values "
                    f"(first: {pd.Timestamp(times[bad][0])}); this is a revision, not an append"
                )
