"""Hindcasts: a pulled model run over a long range of initialisation times (re-forecasts),
block by block, on a Dask cluster or in this process, into one CF Zarr store.

The initialisation times are cut into blocks of a fixed size; a block is one task: it reads
its analyses from the store, forecasts them in batches of that size (so the batches, and the
forecasts, are the same whatever the number of workers), writes its region of the output and
then its done-marker. The output's layout is written first (coordinates, attributes, empty
arrays), with the plan beside it (``X.zarr.hindcast/plan.json``: model digest, inits, leads,
block size); a run that finds the same plan skips the blocks marked done and redoes the
others, so an interrupted hindcast resumes and ends identical to an uninterrupted one. A plan
that differs is refused rather than mixed in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from wxmodels.config.runtime import RuntimeConfig
from wxmodels.errors import DataError, PathError
from wxmodels.faults import crash_point
from wxmodels.schema import LAT, LON

__all__ = ["HindcastPlan", "hindcast", "plan_hindcast", "run_block"]

log = logging.getLogger(__name__)

PLAN = "plan.json"
DONE = "done"


@dataclass(frozen=True)
class HindcastPlan:
    """What a hindcast computes; equal plans are the same computation."""

    model_dir: str
    model_sha256: str
    source: str
    inits: list[str]
    leads_h: list[int]
    runtime: str
    block: int
    out: str

    @property
    def n_blocks(self) -> int:
        return -(-len(self.inits) // self.block)

    def block_inits(self, k: int) -> list[str]:
        return self.inits[k * self.block : (k + 1) * self.block]

    def same_work(self, other: HindcastPlan) -> bool:
        """The same forecasts (a model pulled to another directory is the same model)."""
        a, b = asdict(self), asdict(other)
        a.pop("model_dir"), b.pop("model_dir")
        return a == b


def plan_hindcast(
    model_dir: str | Path,
    source: str,
    start: str,
    end: str,
    every_h: int,
    leads_h: list[int],
    out: str | Path,
    *,
    runtime: Literal["onnx", "torch"] = "onnx",
    block: int = 32,
) -> HindcastPlan:
    """Initialisations every ``every_h`` hours from ``start`` to ``end`` (inclusive)."""
    if every_h <= 0 or block <= 0:
        raise DataError("--every and --block must be positive")
    try:
        inits = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=f"{every_h}h")
    except ValueError as e:
        raise DataError(f"hindcast range {start}..{end}: {e}") from None
    if len(inits) == 0:
        raise DataError(f"no initialisation time between {start} and {end}")
    man = json.loads((Path(model_dir) / "manifest.json").read_text())
    return HindcastPlan(
        model_dir=str(model_dir),
        model_sha256=man["files"]["model.onnx"]["sha256"],
        source=source,
        inits=[t.isoformat() for t in inits],
        leads_h=sorted({int(x) for x in leads_h}),
        runtime=runtime,
        block=block,
        out=str(out),
    )


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _progress(out: str | Path) -> Path:
    """Beside the output (``X.zarr.hindcast/``): the plan and a marker per finished block,
    kept out of the Zarr store so that it holds only the forecast."""
    out = Path(out)
    return out.with_name(out.name + ".hindcast")


def _done_dir(plan: HindcastPlan) -> Path:
    return _progress(plan.out) / DONE


def _template(plan: HindcastPlan) -> None:
    """The output's layout from the first initialisation's forecast: coordinates for every
    initialisation, attributes, arrays chunked one block per chunk, nothing computed."""
    import dask.array as da
    import xarray as xr

    from wxmodels.predict import forecast

    first = forecast(
        plan.model_dir,
        plan.source,
        plan.inits[0],
        plan.leads_h,
        runtime=plan.runtime,  # type: ignore[arg-type]
    )
    frt = pd.DatetimeIndex(plan.inits).to_numpy("datetime64[ns]")
    leads = first["lead_time"].values
    shape = (len(frt), len(leads), first.sizes[LAT], first.sizes[LON])
    chunks = (plan.block, len(leads), shape[2], shape[3])
    ds = xr.Dataset(
        {
            v: (first[v].dims, da.full(shape, np.nan, np.float32, chunks=chunks), first[v].attrs)
            for v in first.data_vars
        },
        coords={
            "forecast_reference_time": (
                "forecast_reference_time",
                frt,
                first["forecast_reference_time"].attrs,
            ),
            "lead_time": ("lead_time", leads, first["lead_time"].attrs),
            "valid_time": (
                ("forecast_reference_time", "lead_time"),
                frt[:, None] + (leads * 3600).astype("timedelta64[s]")[None],
                first["valid_time"].attrs,
            ),
            LAT: first[LAT],
            LON: first[LON],
        },
        attrs={**first.attrs, "history": f"wxc hindcast, {len(frt)} initialisations"},
    )
    ds.attrs["wxcompress_product"] = "hindcast"
    ds.to_zarr(plan.out, mode="w", compute=False, consolidated=False)


def _open_or_create(plan: HindcastPlan, *, overwrite: bool) -> set[int]:
    """Blocks already done; creates the output when it is new. Refuses an output that holds
    something else, or the same path planned differently (unless ``overwrite`` for a
    hindcast this project wrote)."""
    import shutil

    out, prog = Path(plan.out), _progress(plan.out)
    mine = (prog / PLAN).exists()
    for p in (out, prog):
        if p.exists() and not mine and (not p.is_dir() or any(p.iterdir())):
            raise PathError(f"{p} exists and is not a hindcast: nothing was written")
    if mine:
        old = HindcastPlan(**json.loads((prog / PLAN).read_text()))
        if old.same_work(plan):
            done = {int(p.stem) for p in _done_dir(plan).glob("*.json")}
            return {k for k in done if k < plan.n_blocks}
        if not overwrite:
            raise PathError(
                f"{out} holds a hindcast planned otherwise (model, inits, leads or block); "
                "give another --out, or --overwrite to replace it"
            )
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(prog)
    _template(plan)
    _done_dir(plan).mkdir(parents=True)
    _atomic(prog / PLAN, json.dumps(asdict(plan), indent=1).encode())
    return set()


def run_block(plan: HindcastPlan, k: int, threads: int = 1) -> dict[str, Any]:
    """Forecast block ``k`` and write its region, then its done-marker.

    The block's reads run in its own process (Dask's synchronous scheduler): on a cluster the
    task is the unit of parallelism, and a read handed back to the cluster from inside a task
    would queue behind the other blocks and cross processes for nothing."""
    import dask

    from wxmodels.predict import forecast

    t = time.perf_counter()
    inits = plan.block_inits(k)
    with dask.config.set(scheduler="synchronous"):
        ds = forecast(
            plan.model_dir,
            plan.source,
            inits,
            plan.leads_h,
            runtime=plan.runtime,  # type: ignore[arg-type]
            batch_size=plan.block,
            threads=threads,
        )
    lo = k * plan.block
    region = {
        "forecast_reference_time": slice(lo, lo + len(inits)),
        **{d: slice(None) for d in ("lead_time", LAT, LON)},
    }
    # the data variables alone: the coordinates were written with the layout
    ds.drop_vars(list(ds.coords)).to_zarr(plan.out, region=region, consolidated=False)
    crash_point(f"hindcast:after-region:{k}")
    took = time.perf_counter() - t
    # where it ran: a SLURM worker's job too (``runtime.cluster: slurm``)
    rec = {
        "block": k,
        "inits": len(inits),
        "seconds": took,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
    }
    _atomic(_done_dir(plan) / f"{k}.json", json.dumps(rec).encode())
    return rec


def _serial(plan: HindcastPlan, todo: list[int]) -> Iterator[dict[str, Any]]:
    for k in todo:
        yield run_block(plan, k)


def _on_dask(
    plan: HindcastPlan,
    todo: list[int],
    address: str | None,
    workers: int,
    runtime: RuntimeConfig | None = None,
) -> Iterator[dict[str, Any]]:
    from distributed import Client, LocalCluster, as_completed

    with contextlib.ExitStack() as stack:
        if address is None and runtime is not None and runtime.cluster == "slurm":
            from wxmodels.cluster import slurm_cluster

            address = stack.enter_context(slurm_cluster(runtime))
        elif address is None:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
            )
            address = cluster.scheduler_address
        client = stack.enter_context(Client(address))
        futures = client.map(run_block, [plan] * len(todo), todo, pure=False)
        for f in as_completed(futures):
            yield f.result()


def hindcast(
    plan: HindcastPlan,
    *,
    address: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    runtime: RuntimeConfig | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``plan``: in this process with ``workers=1`` and no ``address``, else
    one task per block on the Dask cluster at ``address`` or on a LocalCluster of ``workers``
    processes; with ``runtime.cluster == "slurm"`` (and no ``address``) on SLURM worker jobs
    shaped by ``runtime.slurm`` (:func:`wxmodels.cluster.slurm_cluster`), whatever
    ``workers`` says. Returns counts and timings."""
    done = _open_or_create(plan, overwrite=overwrite)
    todo = [k for k in range(plan.n_blocks) if k not in done]
    log.info(
        "hindcast %s: %d initialisations in %d blocks, %d done before, %d to run",
        plan.out, len(plan.inits), plan.n_blocks, len(done), len(todo),
    )  # fmt: skip
    t = time.perf_counter()
    slurm = runtime is not None and runtime.cluster == "slurm"
    serial = address is None and workers <= 1 and not slurm
    runs = _serial(plan, todo) if serial else _on_dask(plan, todo, address, workers, runtime)
    recs = []
    for rec in runs:
        recs.append(rec)
        if progress is not None:
            progress(len(done) + len(recs), plan.n_blocks)
    import warnings

    import zarr

    with warnings.catch_warnings():  # consolidated metadata is not in the v3 spec (yet)
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(plan.out)
    return {
        "inits": len(plan.inits),
        "blocks": plan.n_blocks,
        "resumed_blocks": len(done),
        "ran_blocks": len(recs),
        "seconds": time.perf_counter() - t,
    }
