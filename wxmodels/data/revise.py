"""Revisions: committed steps whose values changed at the source (ERA5T replaced by ERA5).

They are rewritten in place with an intent log, so that readers always see a committed state:

1. stage the old values (``aux/revision/backup``) and the new ones (``aux/revision/new``);
2. commit the intent (``Commit.revision``): from now on readers overlay the backup;
3. rewrite the steps in place (region writes), update step hashes and statistics;
4. commit the result (``revision = None``, the revised times in the history) and drop staging.

A crash before 2 leaves the store untouched (the staging is discarded by the next run); a crash
after 2 is rolled forward by the next run from the staged new values.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import dask
import dask.array
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from wxmodels.data.arrayio import array_of
from wxmodels.data.stats import ClimAccumulator
from wxmodels.data.writepass import hash_steps
from wxmodels.errors import DataError
from wxmodels.faults import crash_point
from wxmodels.schema import TIME
from wxmodels.utils import rm_tree

if TYPE_CHECKING:
    from wxmodels.data.commit import Commit
    from wxmodels.data.store import Store

__all__ = ["apply", "overlay", "roll_forward"]

log = logging.getLogger(__name__)
STAGE = "aux/revision"


def _hours(times: np.ndarray) -> np.ndarray:
    return np.asarray(times).astype("datetime64[s]").astype(np.int64) / 3600.0


def apply(
    store: Store, old: xr.Dataset, commit: Commit, *, now: str, source: str, max_nan_fraction: float
) -> tuple[Commit, list[str]]:
    """Compare the source's already-committed steps with the store and rewrite those that
    changed. Returns the new commit and the revised times."""
    committed = commit.times()
    idx = committed.get_indexer(pd.DatetimeIndex(old[TIME].values))
    if (idx < 0).any():
        bad = pd.DatetimeIndex(old[TIME].values)[idx < 0][0]
        from wxmodels.errors import IngestError

        raise IngestError(
            f"source step {bad} falls inside the committed range but not on its time axis"
        )
    variables = list(commit.variables)
    arrays = [old[v].data for v in variables]
    src = np.stack(dask.compute(*arrays), axis=1).astype(np.float32)  # (k, V, H, W)
    new_hash = hash_steps(src, commit.hash)
    changed = new_hash != store.step_hashes(commit)[idx]
    if not changed.any():
        return commit, []
    sel = idx[changed]
    times = [str(committed[i]) for i in sel]
    log.warning(
        "%s: %d committed steps changed at the source: revising %s..%s",
        store.url,
        len(sel),
        times[0],
        times[-1],
    )
    # 1. stage backup and new values
    current = store.open(chunks=None).isel({TIME: sel})
    backup = np.stack([current[v].values for v in variables], axis=1).astype(np.float32)
    _stage(store, sel, backup, src[changed])
    crash_point("revision:after-stage")
    # 2. commit the intent
    commit.revision = {
        "id": uuid.uuid4().hex,
        "indices": sel.tolist(),
        "times": times,
        "at": now,
        "source": source,
        "variables": variables,
    }
    commit.sequence += 1
    store.write_commit(commit)
    # 3-4. rewrite and commit
    return _rewrite(store, commit), times


def _stage(store: Store, sel: np.ndarray, backup: np.ndarray, new: np.ndarray) -> None:
    store.ensure_groups("aux")
    rm_tree(store.fs, f"{store.root}/{STAGE}")  # debris of a crash before an intent
    g = zarr.open_group(
        store.sub_url(STAGE), mode="w", storage_options=store.zarr_options, zarr_format=3
    )
    g.create_array("index", data=np.asarray(sel, np.int64))
    g.create_array("backup", data=backup)
    g.create_array("new", data=new)


def _read_stage(store: Store) -> dict[str, np.ndarray]:
    g = zarr.open_group(
        store.sub_url(STAGE), mode="r", storage_options=store.zarr_options, zarr_format=3
    )
    return {k: np.asarray(array_of(g, k)[...]) for k in ("index", "backup", "new")}


def _rewrite(store: Store, commit: Commit) -> Commit:
    st = _read_stage(store)
    sel, backup, new = st["index"], st["backup"], st["new"]
    variables = list(commit.variables)
    root = zarr.open_group(store.url, mode="r+", storage_options=store.zarr_options, zarr_format=3)
    for i, v in enumerate(variables):
        array_of(root, v).oindex[sel] = new[:, i]
        if i == 0:
            crash_point("revision:mid-region")
    hashes = zarr.open_array(
        store.sub_url("aux/step_hash"), mode="r+", storage_options=store.zarr_options, zarr_format=3
    )
    hashes.oindex[sel] = hash_steps(new, commit.hash)
    crash_point("revision:after-region")
    # statistics: take the old values out, put the new ones in
    valid = store.static()["valid_mask"].values
    hours = _hours(commit.times()[sel].values)
    clim = store.read_clim(commit)
    intent = commit.revision
    if clim is None or intent is None:
        raise DataError(f"{store.url}: a revision needs the store's statistics and its intent")
    old_acc = ClimAccumulator(len(variables), valid.shape, clim.n_annual, clim.n_diurnal)
    old_acc.add(backup, hours, valid)
    new_acc = ClimAccumulator(len(variables), valid.shape, clim.n_annual, clim.n_diurnal)
    new_acc.add(new, hours, valid)
    clim.xtx += new_acc.xtx - old_acc.xtx
    clim.xty += new_acc.xty - old_acc.xty
    clim.n += new_acc.n - old_acc.n
    moments = commit.get_moments()
    _swap_moments(moments, backup, new)
    commit.moments = asdict(moments)
    old_group = commit.stats_group
    commit.sequence += 1
    commit.stats_group = store.write_stats(clim, commit.sequence)
    commit.history.append(
        {
            "at": intent["at"],
            "revised": intent["times"],
            "source": intent.get("source", ""),
        }
    )
    commit.revision = None
    store.write_commit(commit)
    if old_group:
        store.drop_old_stats(commit.stats_group)
    rm_tree(store.fs, f"{store.root}/{STAGE}")
    return commit


def _swap_moments(moments, backup: np.ndarray, new: np.ndarray) -> None:
    """Value moments: subtract the old values' sums, add the new ones'. (Tendency moments are
    left as they are: a revision moves them by a few steps out of the whole record.)"""
    for v in range(backup.shape[1]):
        for sign, x in ((-1.0, backup[:, v]), (1.0, new[:, v])):
            ok = np.isfinite(x)
            y = np.where(ok, x.astype(np.float64) - moments.shift[v], 0.0)
            moments.n[v] += sign * float(ok.sum())
            moments.s1[v] += sign * float(y.sum())
            moments.s2[v] += sign * float((y * y).sum())


def roll_forward(store: Store, commit: Commit) -> Commit:
    """Finish a revision whose intent was committed before a crash."""
    log.warning(
        "%s: finishing an interrupted revision of %d steps",
        store.url,
        len((commit.revision or {}).get("indices", [])),
    )
    return _rewrite(store, commit)


def overlay(store: Store, ds: xr.Dataset, intent: dict[str, Any]) -> xr.Dataset:
    """``ds`` with the revised steps replaced by their staged old values (the committed state)."""
    st = _read_stage(store)
    sel = st["index"]
    mask = np.zeros(ds.sizes[TIME], bool)
    mask[sel] = True
    is_rev = xr.DataArray(mask, dims=[TIME], coords={TIME: ds[TIME]})
    out = ds.copy()
    shape = (ds.sizes[TIME], *st["backup"].shape[2:])
    order = intent.get("variables") or list(ds.data_vars)
    for v in ds.data_vars:
        i = order.index(v)
        if ds[v].chunks:  # lazy: a dask array that holds the backup at the revised steps
            full = dask.array.zeros(shape, chunks=ds[v].data.chunks, dtype=np.float32)
        else:
            full = np.zeros(shape, np.float32)
        full[sel] = st["backup"][:, i]
        old = xr.DataArray(full, dims=ds[v].dims, coords=ds[v].coords)
        out[v] = xr.where(is_rev, old, ds[v]).assign_attrs(ds[v].attrs)
    return out
