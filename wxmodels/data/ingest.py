"""Ingest: source -> canonical -> validated -> appended to the store, incrementally.

Each run reads only inputs that are new or changed since the store's ledger; values are
validated in the same pass that writes them; inputs that fail are set aside (quarantined) with
their reason while the rest of the batch goes on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.config.data import DataConfig
from wxmodels.data.sources import Problem, Source, make_source
from wxmodels.data.store import Store
from wxmodels.data.validate import validate
from wxmodels.errors import DataError, GapError, IngestError
from wxmodels.record import Record

__all__ = ["IngestReport", "ingest", "read_static_fields"]

log = logging.getLogger(__name__)


class IngestReport(Record):
    """What an ingest run did."""

    store: str
    version: str | None
    appended: int
    """Steps appended."""
    skipped: int
    """Steps offered again with the same values."""
    start: str | None
    end: str | None
    """The store's range after the run."""
    inputs: int
    """Inputs the source lists."""
    read: int
    """Inputs read (new or changed)."""
    problems: list[dict[str, str]] = []
    """Inputs left out: ``{path, reason}``."""
    revised: list[str] = []
    gap: str | None = None
    missing: list[str] = []
    offered: list[str] | None = None
    """The first and last time the source offered."""
    files: dict[str, dict[str, Any]] = {}
    """Per input read: the canonical variables it gave, its grid, how it was regridded
    (the store's ledger keeps the same)."""


def read_static_fields(cfg: DataConfig, like: xr.Dataset) -> dict[str, np.ndarray]:
    """Static fields from files, interpolated (nearest) onto the store's grid."""
    from wxmodels.data.canonical import _find

    out: dict[str, np.ndarray] = {}
    for name, sf in cfg.static.items():
        try:
            with xr.open_dataset(sf.path) as ds:
                lat, lon = (
                    _find(ds, ("lat", "latitude"), "latitude"),
                    _find(ds, ("lon", "longitude"), "longitude"),
                )
                da = ds[sf.variable]
                if "time" in da.dims:
                    da = da.isel(time=0)
                da = da.rename({lat: "lat", lon: "lon"})
                da = da.assign_coords(lon=((da.lon + 180) % 360) - 180).sortby(["lat", "lon"])
                out[name] = (
                    da.sel(lat=like.lat, lon=like.lon, method="nearest").values * sf.scale
                ).astype(np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"static field {name} from {sf.path}: {e}") from e
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _attribute(src: Source, result, max_nan_fraction: float) -> list[Problem]:
    """Find which inputs make the batch fail value validation (read each one on its own, on
    this process's threads: one input is small, and a cluster is not needed to read it)."""
    from wxmodels.data.sources import InputRef

    bad = []
    with dask.config.set(scheduler="threads"):
        for rid, meta in result.inputs.items():
            if not meta.get("range"):
                continue
            try:
                ds = src._open_one(InputRef(rid, meta["fingerprint"]))
                validate(ds, max_nan_fraction=max_nan_fraction, what=rid.rsplit("/", 1)[-1])
            except (DataError, OSError, ValueError) as e:
                bad.append(Problem(rid, str(e).splitlines()[0], meta["fingerprint"]))
    return bad


def _remember(store: Store, problems: list[Problem]) -> None:
    """Record set-aside inputs in the commit's ledger, so that they are not read again until
    they change (a store that has no commit yet keeps nothing)."""
    commit = store.read_commit()
    if commit is None or not problems:
        return
    commit.quarantine.update(
        {p.path: {"fingerprint": p.fingerprint, "reason": p.reason, "at": _now()} for p in problems}
    )
    commit.sequence += 1
    store.write_commit(commit)


def ingest(cfg: DataConfig, *, dask_address: str | None = None) -> IngestReport:
    """Append what is new in ``cfg.source`` to ``cfg.store``.

    The reads and writes run on Dask: the threaded scheduler by default, or the distributed
    cluster at ``dask_address`` (its workers must see the inputs and the store).
    Raises :class:`IngestError` when nothing usable is offered and the store cannot advance,
    :class:`~wxmodels.data.blockrun.PausedWorkerError` when a worker of the cluster stays
    paused over its memory limit for ``cfg.paused_timeout_s`` with the write not advancing
    (nothing is committed).
    """
    with xr.set_options(file_cache_maxsize=cfg.max_open_files):
        if dask_address:
            from distributed import Client

            with Client(dask_address):
                return _ingest(cfg)
        return _ingest(cfg)


def _ingest(cfg: DataConfig) -> IngestReport:
    store = Store(
        cfg.store,
        cfg.storage_options,
        lock_timeout=cfg.lock_timeout_s,
        lease_s=cfg.lock_lease_s,
    )
    # one writer per store: the ledger is read, the data appended and the ledger updated
    # under the store's lock (a second ingest waits, then finds the work done)
    with store.writing():
        return _ingest_locked(cfg, store)


def _ingest_locked(cfg: DataConfig, store: Store) -> IngestReport:
    commit = store.read_commit()
    src = make_source(
        cfg.source, variables=cfg.variables, time_chunk=cfg.time_chunk, target_grid=cfg.grid
    )
    refs = src.list_inputs()
    ledger = commit.inputs if commit else {}
    quarantined = commit.quarantine if commit else {}
    todo = [
        r
        for r in refs
        if ledger.get(r.id, {}).get("fingerprint") != r.fingerprint
        and quarantined.get(r.id, {}).get("fingerprint") != r.fingerprint
    ]
    held = [
        {"path": r.id, "reason": "still quarantined: " + quarantined[r.id]["reason"]}
        for r in refs
        if quarantined.get(r.id, {}).get("fingerprint") == r.fingerprint
    ]
    if not todo:
        log.info("ingest %s: nothing new among %d inputs", store.url, len(refs))
        return IngestReport(
            store=store.url,
            version=commit.version if commit else None,
            appended=0,
            skipped=0,
            start=commit.start if commit else None,
            end=commit.end if commit else None,
            inputs=len(refs),
            read=0,
            problems=held,
        )
    after = np.datetime64(pd.Timestamp(commit.end)) if commit else None
    # inputs of this store used to hold every variable: one that lacks some is defective
    complete = any(set(cfg.variables) <= set(m.get("canonical", ())) for m in ledger.values())
    res = src.open(
        todo, after=after if cfg.source.kind == "zarr" else None, complete_layout=complete
    )
    problems = list(res.problems)
    report = waiting = None
    for attempt in range(2):
        if res.dataset is None:
            break
        times = res.dataset["time"].values
        end_before = commit.end if commit else None
        try:
            static = read_static_fields(cfg, res.dataset) if commit is None else {}
            rep = store.append(
                res.dataset,
                time_chunk=cfg.time_chunk,
                source=cfg.source.kind,
                max_nan_fraction=cfg.max_nan_fraction,
                static=static,
                gaps=cfg.gaps,
                paused_timeout_s=cfg.paused_timeout_s,
                quarantine={
                    p.path: {"fingerprint": p.fingerprint, "reason": p.reason, "at": _now()}
                    for p in problems
                },
            )
        except GapError as e:
            # everything new waits for missing steps: a state to report, not a failed run
            log.warning("ingest %s: %s", store.url, e)
            waiting = IngestReport(
                store=store.url,
                version=commit.version if commit else None,
                appended=0,
                skipped=0,
                start=commit.start if commit else None,
                end=commit.end if commit else None,
                inputs=len(refs),
                read=len(todo),
                problems=[{"path": p.path, "reason": p.reason} for p in problems] + held,
                gap=str(e),
                offered=[str(pd.Timestamp(times[0])), str(pd.Timestamp(times[-1]))],
            )
            break
        except DataError:
            if attempt == 1:
                raise
            bad = _attribute(src, res, cfg.max_nan_fraction)
            if not bad:
                raise
            log.warning(
                "setting aside %d input(s) that fail validation: %s",
                len(bad),
                "; ".join(f"{b.path}: {b.reason}" for b in bad),
            )
            problems += bad
            keep = [r for r in todo if r.id not in {b.path for b in bad + problems}]
            res = src.open(
                keep,
                after=after if cfg.source.kind == "zarr" else None,
                complete_layout=complete,
            )
            problems += [p for p in res.problems if p not in problems]
            continue
        # record as ingested only the inputs whose steps are all committed now (inputs past a
        # gap are read again next time)
        end = np.datetime64(pd.Timestamp(rep.end))
        done = {
            rid: {**meta, "at": _now()}
            for rid, meta in res.inputs.items()
            if not meta.get("range") or np.datetime64(pd.Timestamp(meta["range"][1])) <= end
        }
        if done:
            commit = store.read_commit()
            if commit is None:
                raise IngestError(f"{store.url}: the commit record vanished during the ingest")
            commit.inputs.update(done)
            for rid in done:
                commit.quarantine.pop(rid, None)
            commit.sequence += 1
            store.write_commit(commit)
        src.done(list(done))
        report = IngestReport(
            store=store.url,
            version=store.version(),
            appended=rep.appended,
            skipped=rep.skipped,
            start=rep.start,
            end=rep.end,
            inputs=len(refs),
            read=len(todo),
            problems=[{"path": p.path, "reason": p.reason} for p in problems] + held,
            revised=rep.revised,
            gap=rep.gap,
            missing=rep.missing,
            offered=[str(pd.Timestamp(times[0])), str(pd.Timestamp(times[-1]))],
            files={
                rid: {k: m[k] for k in ("canonical", "grid", "regridded") if k in m}
                for rid, m in res.inputs.items()
            },
        )
        log.info(
            "ingest %s: +%d steps (%d already present, %d revised), %s..%s (was ..%s), version %s",
            store.url,
            rep.appended,
            rep.skipped,
            len(rep.revised),
            rep.start,
            rep.end,
            end_before,
            rep.version,
        )
        break
    src.set_aside(problems)
    if report is None and waiting is not None:
        _remember(store, problems)
        report = waiting
    if report is None:
        _remember(store, problems)
        first = problems[0] if problems else Problem("-", "nothing to ingest")
        raise IngestError(
            f"no usable input among {len(todo)} new input(s); first problem: "
            f"{first.path}: {first.reason}"
        )
    return report
