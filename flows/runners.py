"""Task runners: a Dask cluster by address, or a LocalCluster started for the run."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import dask
from prefect_dask import DaskTaskRunner

from wxmodels.config.runtime import RuntimeConfig

__all__ = ["dask_runner", "local_cluster"]

log = logging.getLogger(__name__)


def dask_runner(rt: RuntimeConfig, address: str | None = None) -> DaskTaskRunner:
    """Join ``address`` (or ``rt.dask_address``, or ``$WXC_DASK_ADDRESS``); otherwise the
    runner starts a LocalCluster."""
    address = address or rt.dask_address or os.environ.get("WXC_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=_local_kwargs(rt))


def _local_kwargs(rt: RuntimeConfig) -> dict:
    # read by each Nanny before it spawns its worker (glibc reads the variable at start-up);
    # None removes Dask's default rather than setting a value
    dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": rt.malloc_trim_threshold,
            # the library's own log records, emitted in workers, go to the flow run too
            "distributed.nanny.pre-spawn-environ.PREFECT_LOGGING_EXTRA_LOGGERS": "wxmodels",
        }
    )
    return {
        "n_workers": rt.n_workers,
        "threads_per_worker": rt.threads_per_worker,
        "processes": True,
        "dashboard_address": os.environ.get("WXC_DASK_DASHBOARD", ":0"),
    }


@contextlib.contextmanager
def local_cluster(rt: RuntimeConfig) -> Iterator[str | None]:
    """Yield the scheduler address the run's subflows share: ``rt.dask_address`` when set,
    else that of a LocalCluster that lives for the ``with`` block."""
    address = rt.dask_address or os.environ.get("WXC_DASK_ADDRESS")
    if address:
        yield address
        return
    from distributed import LocalCluster

    with LocalCluster(**_local_kwargs(rt)) as cluster:
        log.info(
            "Dask LocalCluster %s (%d workers), dashboard %s",
            cluster.scheduler_address,
            rt.n_workers,
            cluster.dashboard_link,
        )
        yield cluster.scheduler_address
