"""Writing the store: appends (new steps), first writes, truncation of debris, statistics.

The methods of :class:`Appending` are :class:`~wxmodels.data.store.Store`'s: a writer holds
``Store.writing()`` (path claimed, one-writer lock held) around them; see the store's module
docstring for the commit protocol.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import dask
import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.data import writepass
from wxmodels.data.arrayio import ArrayIO, write_group
from wxmodels.data.commit import Commit
from wxmodels.data.timeaxis import contiguous, fill_gaps, gap_message, grid_hash, infer_step_s
from wxmodels.errors import GapError, IngestError
from wxmodels.faults import crash_point
from wxmodels.paths import entries
from wxmodels.schema import LAT, LON, TIME

if TYPE_CHECKING:
    from wxmodels.data.store import Store

__all__ = ["AppendReport", "Appending"]

log = logging.getLogger(__name__)
_OWN = "_wxc"


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


class Appending(ArrayIO):
    """The writing half of :class:`~wxmodels.data.store.Store` (a mixin)."""

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
        gaps: str = "refuse",
        paused_timeout_s: float = writepass.blockrun.PAUSED_TIMEOUT_S,
    ) -> AppendReport:
        """Add what ``ds`` has that the store lacks, in one pass over the new data.

        * steps already committed are compared by content hash: identical ones are skipped,
          different ones are *revisions*, rewritten in place (see the module docstring);
        * new steps are appended as far as they are contiguous: a gap is reported in ``gap`` and
          the steps after it wait for the missing ones (never filled or interpolated); with
          ``gaps="allow"`` (a record with known gaps) the store goes on past a gap, its steps
          kept missing (NaN) and recorded as ranges in the history (``gaps``);
        * values are validated in the same pass as the write (ranges, NaNs inside the domain);
          a failure raises :class:`~wxmodels.errors.DataError` and commits nothing;
        * ``inputs`` / ``quarantine`` are recorded in the commit's ledger;
        * on a Dask cluster, a worker paused over its memory limit with no chunk finishing for
          ``paused_timeout_s`` raises
          :class:`~wxmodels.data.blockrun.PausedWorkerError` (nothing is committed) instead
          of waiting forever.
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
                gaps=gaps,
                paused_timeout_s=paused_timeout_s,
            )

    def _append(
        self,
        ds,
        *,
        time_chunk,
        source,
        max_nan_fraction,
        inputs,
        quarantine,
        static,
        gaps,
        paused_timeout_s=writepass.blockrun.PAUSED_TIMEOUT_S,
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
        filled: list = []
        if commit is None:
            if gaps == "allow" and len(times) > 1:
                ds, filled = fill_gaps(ds, times[0], infer_step_s(times))
            return self._first_write(
                ds,
                time_chunk=time_chunk,
                source=source,
                now=now,
                max_nan_fraction=max_nan_fraction,
                inputs=inputs or {},
                quarantine=quarantine or {},
                static=static or {},
                filled=filled,
                paused_timeout_s=paused_timeout_s,
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
        if new.sizes[TIME] and gaps == "allow":
            new, filled = fill_gaps(new, end + np.timedelta64(step_s, "s"), step_s)
        if new.sizes[TIME]:
            expected = end + np.timedelta64(step_s, "s")
            n_new = contiguous(new[TIME].values, expected, step_s)
            if n_new == 0:
                raise GapError(
                    f"gap in time: the store ends at {commit.end}, the source continues at "
                    f"{pd.Timestamp(new[TIME].values[0])} (expected {pd.Timestamp(expected)});"
                    " nothing was written"
                )
            gap = gap_message(new[TIME].values, n_new)
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
                filled=filled,
                paused_timeout_s=paused_timeout_s,
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
            gap or _gaps_message(filled),
            missing,
        )

    # -- first write / append ------------------------------------------------------------
    def _first_write(
        self,
        ds,
        *,
        time_chunk,
        source,
        now,
        max_nan_fraction,
        inputs,
        quarantine,
        static,
        filled,
        paused_timeout_s=writepass.blockrun.PAUSED_TIMEOUT_S,
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
        gap = gap_message(times, n)
        ds = ds.isel({TIME: slice(0, n)})
        if [e for e in entries(self.fs, self.root) if e != _OWN]:
            log.warning("%s: removing an uncommitted first write", self.url)
            self._clear_uncommitted()
        chunked = ds.chunk({TIME: time_chunk, LAT: -1, LON: -1})
        encoding = {v: {"chunks": (time_chunk, ds.sizes[LAT], ds.sizes[LON])} for v in ds.data_vars}
        # metadata and coordinates only: the write pass writes the data
        _metadata_only(chunked).to_zarr(
            self.url,
            mode="a",  # the claimed, emptied path holds only _wxc (marker, lock)
            zarr_format=3,
            consolidated=False,
            encoding=encoding,
            storage_options=cast("dict[str, str] | None", self.zarr_options),
            compute=False,
        )
        try:
            res = writepass.run(
                chunked,
                self._targets(list(chunked.data_vars)),
                0,
                valid=None,
                prev=None,
                scheme=writepass.HASHES[0],
                paused_timeout_s=paused_timeout_s,
            )
            shape = (ds.sizes[LAT], ds.sizes[LON])
            valid = res.valid_from_data(shape)
            missing = res.check(
                list(ds.data_vars),
                valid,
                ds[TIME].values,
                max_nan_fraction=max_nan_fraction,
                where=source or self.url,
                allow_gaps=bool(filled),
            )
        except Exception:
            self._clear_uncommitted()  # nothing was committed: leave no debris
            raise
        self._write_hashes(res.hashes, 0)
        fields = {
            "valid_mask": valid,
            **{k: np.asarray(v, np.float32) for k, v in (static or {}).items()},
        }
        write_group(
            self.sub_url("static"),
            {**fields, LAT: ds[LAT].values, LON: ds[LON].values},
            storage_options=self.zarr_options,
            dims={**dict.fromkeys(fields, (LAT, LON)), LAT: (LAT,), LON: (LON,)},
        )
        t0, t1 = str(pd.Timestamp(times[0])), str(pd.Timestamp(times[n - 1]))
        commit = Commit(
            n_time=n,
            start=t0,
            end=t1,
            step_hours=step_s / 3600.0,
            variables={v: ds[v].attrs.get("units", "") for v in ds.data_vars},
            grid=grid_hash(ds[LAT].values, ds[LON].values),
            shape=list(shape),
            history=[
                {
                    "at": now,
                    "appended": n,
                    "source": source,
                    "range": [t0, t1],
                    **({"gap": gap} if gap else {}),
                    **({"missing": missing} if missing else {}),
                    **({"gaps": filled} if filled else {}),
                }
            ],
            inputs=dict(inputs),
            quarantine=dict(quarantine),
            hash=writepass.HASHES[0],
        )
        moments = commit.get_moments()
        res.add_to(moments, None)
        commit.moments = asdict(moments)
        commit.stats_group = self.write_stats(res.clim, commit.sequence)
        crash_point("append:after-data")
        self.write_commit(commit)
        return AppendReport(
            self.url,
            n,
            0,
            t0,
            t1,
            commit.version,
            (t0, t1),
            [],
            gap or _gaps_message(filled),
            missing,
        )

    def _append_new(
        self,
        new,
        commit,
        *,
        time_chunk,
        now,
        source,
        gap,
        max_nan_fraction,
        filled=(),
        paused_timeout_s=writepass.blockrun.PAUSED_TIMEOUT_S,
    ):
        self._truncate_to(commit.n_time)
        head = (-commit.n_time) % time_chunk or time_chunk
        n_new = new.sizes[TIME]
        sizes = [min(head, n_new)]
        while sum(sizes) < n_new:
            sizes.append(min(time_chunk, n_new - sum(sizes)))
        new = new.chunk({TIME: tuple(sizes), LAT: -1, LON: -1})
        for v in new.data_vars:
            new[v].encoding = {}
        _metadata_only(new).to_zarr(  # resizes the arrays, writes the new times; the write
            # pass writes the data
            self.url,
            append_dim=TIME,
            zarr_format=3,
            consolidated=False,
            storage_options=self.zarr_options,
            compute=False,
        )
        with dask.config.set(scheduler="threads"):  # small reads: no trip to the cluster
            valid = self.static()["valid_mask"].values
            last = self.open(chunks=None).isel({TIME: -1})
            prev = np.stack([last[v].values for v in commit.variables])
        try:
            res = writepass.run(
                new,
                self._targets(list(new.data_vars)),
                commit.n_time,
                valid=valid,
                prev=prev,
                scheme=commit.hash,
                paused_timeout_s=paused_timeout_s,
            )
            missing = res.check(
                list(commit.variables),
                valid,
                new[TIME].values,
                max_nan_fraction=max_nan_fraction,
                where=source or self.url,
                allow_gaps=bool(filled),
            )
        except Exception:  # invalid values, a failed write, a stuck cluster: nothing committed
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
                **({"gaps": list(filled)} if filled else {}),
            }
        )
        crash_point("append:after-data")
        self.write_commit(commit)
        if old_stats:
            self.drop_old_stats(commit.stats_group)
        return commit, missing

    # -- revisions -----------------------------------------------------------------------
    def _apply_revisions(
        self,
        old: xr.Dataset,
        commit: Commit,
        *,
        now: str,
        source: str,
        max_nan_fraction: float,
    ) -> tuple[Commit, list[str]]:
        from wxmodels.data import revise

        return revise.apply(
            cast("Store", self),
            old,
            commit,
            now=now,
            source=source,
            max_nan_fraction=max_nan_fraction,
        )

    def _finish_revision(self, commit: Commit) -> Commit:
        from wxmodels.data import revise

        return revise.roll_forward(cast("Store", self), commit)

    def _overlay_backup(self, ds: xr.Dataset, intent: dict[str, Any]) -> xr.Dataset:
        from wxmodels.data import revise

        return revise.overlay(cast("Store", self), ds, intent)


def _metadata_only(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with each data variable's values replaced by an empty dask array of the same
    shape, dtype, attributes and encoding, in one chunk: ``to_zarr(compute=False)`` then
    writes the same metadata and coordinates without building (and discarding) a write graph
    over the source's whole read graph (the Zarr chunks come from the encoding or the
    existing arrays; one dask chunk overlaps no other)."""
    return ds.assign(
        {
            v: ds[v].copy(data=dask.array.empty(ds[v].shape, chunks=-1, dtype=ds[v].dtype))
            for v in ds.data_vars
        }
    )


def _gaps_message(filled) -> str | None:
    """``2 gaps kept missing: 2001-03-01..2001-11-30 (275 steps), ...``"""
    if not filled:
        return None
    shown = ", ".join(f"{a}..{b} ({n} steps)" for a, b, n in list(filled)[:3])
    more = f" and {len(filled) - 3} more" if len(filled) > 3 else ""
    return f"{len(filled)} gap(s) kept missing (data.gaps: allow): {shown}{more}"
