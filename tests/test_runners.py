"""Warm workers: the plugin that imports the pipeline's modules in each Dask worker as it
joins, so that no worker's first task pays for the imports."""

from __future__ import annotations

import sys
import time

import pytest

from flows.runners import WARM_MODULES, WarmWorker

pytestmark = pytest.mark.integration


def _has(module: str) -> bool:
    return module in sys.modules


def test_workers_are_warmed_when_registered_and_when_they_join():
    from distributed import Client, LocalCluster

    light = "wxmodels.replay.records"  # nothing in a bare worker imports it
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        assert not any(client.run(_has, light).values())
        client.register_plugin(WarmWorker((light,)))
        assert all(client.run(_has, light).values())
        cluster.scale(2)
        client.wait_for_workers(2, timeout=60)
        deadline = time.monotonic() + 60
        while not all(got := client.run(_has, light).values()) or len(got) < 2:
            assert time.monotonic() < deadline, "the joining worker was not warmed"
            time.sleep(0.2)


def test_the_session_cluster_is_warm(dask_cluster):
    from distributed import Client

    with Client(dask_cluster) as client:
        for m in WARM_MODULES:
            assert all(client.run(_has, m).values()), m


def test_a_run_cluster_keeps_glibc_dynamic_thresholds_and_no_profiler(monkeypatch):
    """A plain LocalCluster's nanny earlier in this process leaves Dask's
    ``MALLOC_TRIM_THRESHOLD_=65536`` in ``os.environ``; the run's cluster (the config's
    ``None``: glibc's dynamic thresholds) does not hand it to its workers."""
    import os

    from distributed import Client

    from flows.runners import run_cluster
    from wxmodels.config.runtime import RuntimeConfig

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as such a nanny leaves it
    monkeypatch.delenv("WXC_DASK_ADDRESS", raising=False)  # its own cluster, not the session's

    def seen() -> tuple:
        import dask

        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), dask.config.get(
            "distributed.worker.profile.enabled"
        )

    with run_cluster(RuntimeConfig(n_workers=1)) as address, Client(address) as client:
        got = client.run(seen)
    # and the statistical profiler is off (runtime.worker_profile)
    assert list(got.values()) == [(None, False)]
