"""Task runners: a Dask cluster by address, or one started for the run (a LocalCluster, or
SLURM worker jobs with ``runtime.cluster: slurm``); either way its workers are warmed (the
pipeline's modules imported) before the first task arrives."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
from collections.abc import Iterator

import dask
from distributed import WorkerPlugin
from prefect_dask import DaskTaskRunner

from wxmodels.config.runtime import RuntimeConfig
from wxmodels.errors import WxcError

__all__ = ["WarmWorker", "dask_runner", "local_cluster", "run_cluster", "warm"]

log = logging.getLogger(__name__)


def dask_runner(rt: RuntimeConfig, address: str | None = None) -> DaskTaskRunner:
    """Join ``address`` (or ``rt.dask_address``, or ``$WXC_DASK_ADDRESS``); otherwise the
    runner starts a LocalCluster. SLURM workers come from :func:`run_cluster` only (it waits
    for them and cancels their jobs), so ``cluster: slurm`` needs its address here."""
    address = address or rt.dask_address or os.environ.get("WXC_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    if rt.cluster != "local":
        raise WxcError(
            f"runtime.cluster is {rt.cluster}: start it with flows.runners.run_cluster and "
            "pass its address"
        )
    return DaskTaskRunner(cluster_kwargs=_local_kwargs(rt))


def _local_kwargs(rt: RuntimeConfig) -> dict:
    if rt.malloc_trim_threshold is None:
        # the config alone decides, as in SLURM jobs (wxmodels.cluster): a nanny of an earlier
        # cluster in this process may have put Dask's 65536 into os.environ (it updates its
        # own environment before spawning), which the workers would inherit
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    # read by each Nanny before it spawns its worker (glibc reads the variable at start-up);
    # None removes Dask's default rather than setting a value
    dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": rt.malloc_trim_threshold,
            # the library's own log records, emitted in workers, go to the flow run too
            "distributed.nanny.pre-spawn-environ.PREFECT_LOGGING_EXTRA_LOGGERS": "wxmodels",
            # the nannies hand their config to the workers they start
            "distributed.worker.profile.enabled": rt.worker_profile,
        }
    )
    return {
        "n_workers": rt.n_workers,
        "threads_per_worker": rt.threads_per_worker,
        "processes": True,
        "dashboard_address": os.environ.get("WXC_DASK_DASHBOARD", ":0"),
    }


WARM_MODULES = ("tasks.compress", "tasks.evaluate", "prefect.task_engine")
"""What a worker imports when it joins: the tasks' modules (torch, onnx, onnxruntime and its
quantization tools, xarray, zarr and the project with them) and Prefect's task engine."""


class _ServerLostRecords(logging.Filter):
    """Drops a worker's "Compute Failed" records of tasks that could not reach the Prefect API:
    the command running the flow says that in one line (:mod:`flows.watchdog`), and the
    workers of its LocalCluster share its terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to reach API at" not in record.getMessage()


class WarmWorker(WorkerPlugin):
    """Imports :data:`WARM_MODULES` in each worker as it joins (and in those already there when
    the plugin is registered), so that a worker's first task costs what its others do instead
    of paying ~10 s of imports while the other workers wait on its result. Also keeps a lost
    Prefect server's failures out of the worker's log (:class:`_ServerLostRecords`)."""

    name = "wxc-warm"

    def __init__(self, modules: tuple[str, ...] = WARM_MODULES) -> None:
        self.modules = modules

    def setup(self, worker) -> None:
        wlog = logging.getLogger("distributed.worker")
        if not any(isinstance(f, _ServerLostRecords) for f in wlog.filters):
            wlog.addFilter(_ServerLostRecords())
        t = time.perf_counter()
        for m in self.modules:
            importlib.import_module(m)
        logging.getLogger("wxmodels.warm").info(
            "worker %s warm in %.1f s", worker.address, time.perf_counter() - t
        )


def warm(address: str) -> None:
    """Register :class:`WarmWorker` on the cluster at ``address``; returns when every worker
    now in it has run it (workers joining later run it as they join). Idempotent: on warm
    workers it costs a round trip."""
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.register_plugin(WarmWorker())


@contextlib.contextmanager
def run_cluster(rt: RuntimeConfig) -> Iterator[str]:
    """Yield the scheduler address the run's subflows share, its workers warmed:
    ``rt.dask_address`` when set, else that of a cluster that lives for the ``with`` block:
    SLURM worker jobs with ``rt.cluster == "slurm"`` (all joined before it yields, cancelled
    after), a LocalCluster otherwise."""
    address = rt.dask_address or os.environ.get("WXC_DASK_ADDRESS")
    if address:
        warm(address)
        yield address
        return
    if rt.cluster == "slurm":
        with _slurm(rt) as address:
            yield address
        return
    from distributed import LocalCluster

    with LocalCluster(**_local_kwargs(rt)) as cluster:
        t = time.perf_counter()
        warm(cluster.scheduler_address)
        log.info(
            "Dask LocalCluster %s (%d workers, warm in %.0f s), dashboard %s",
            cluster.scheduler_address,
            rt.n_workers,
            time.perf_counter() - t,
            cluster.dashboard_link,
        )
        yield cluster.scheduler_address


local_cluster = run_cluster
"""The former name of :func:`run_cluster`."""


@contextlib.contextmanager
def _slurm(rt: RuntimeConfig) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL

    from wxmodels.cluster import slurm_cluster

    # tasks in the jobs report to this run's API, also where a site does not pass the
    # submitter's environment on to its jobs
    api = PREFECT_API_URL.value()
    with slurm_cluster(
        rt,
        exports={"PREFECT_API_URL": api} if api else {},
        worker_environ={"PREFECT_LOGGING_EXTRA_LOGGERS": "wxmodels"},
    ) as address:
        t = time.perf_counter()
        warm(address)
        log.info("SLURM workers warm in %.0f s", time.perf_counter() - t)
        yield address
