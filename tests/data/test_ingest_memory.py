"""Ingest through a Dask cluster under a memory limit: a dataset several times a worker's limit
goes through two limited workers and the store is right; a worker that stays paused (over its
memory pause threshold) fails the ingest with a message naming it, and nothing is committed."""

from __future__ import annotations

import threading
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from wxmodels.config.data import DataConfig
from wxmodels.data.blockrun import PausedWorkerError
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store
from wxmodels.data.synthetic import write_synthetic_files
from wxmodels.data.writepass import hash_steps

VARS = [
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "total_cloud_cover",
    "total_precipitation_rate",
    "surface_solar_radiation_downwards",
]
LIMIT_MIB = 450


def _days(directory: Path, *, days: int, nlat: int, nlon: int) -> list[Path]:
    """``days`` daily files: one synthetic day written again with later times and a
    day-dependent offset on the temperature (every step differs; fast to write)."""
    (one,) = write_synthetic_files(directory / "seed", days=1, nlat=nlat, nlon=nlon, seed=11)
    out = []
    with xr.open_dataset(one) as ds0:
        ds0 = ds0.load()
    for d in range(days):
        ds = ds0.assign_coords(time=ds0.time + np.timedelta64(d, "D"))
        ds["t2m"] = ds["t2m"] + np.float32(0.01 * d)
        path = directory / f"day_{d:03d}.nc"
        ds.to_netcdf(path, engine="h5netcdf")
        out.append(path)
    return out


class _sample_peaks:  # noqa: N801 - used as a function
    """Peak RSS (MiB) of each worker, sampled every 0.2 s on a thread until :meth:`stop`."""

    def __init__(self, client) -> None:
        import psutil

        self.rss: dict[str, float] = {}
        self.client = client
        self.done = threading.Event()

        def rss() -> float:
            return psutil.Process().memory_info().rss / 2**20

        def loop() -> None:
            while not self.done.wait(0.2):
                try:
                    for w, v in client.run(rss).items():
                        self.rss[w] = max(self.rss.get(w, 0.0), v)
                except Exception:  # a sample lost while the cluster closes
                    pass

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def _cfg(files: list[Path], store: Path, **kw) -> DataConfig:
    return DataConfig.model_validate(
        {
            "source": {
                "kind": "files",
                "paths": [str(p) for p in files],
                "accumulation_hours": 1.0,
            },
            "store": str(store),
            "variables": VARS,
            "time_chunk": 24,
            **kw,
        }
    )


@pytest.mark.slow
def test_dataset_several_times_the_worker_limit_goes_through(tmp_path):
    from distributed import Client, LocalCluster

    # 80 days of 128 x 192, 7 variables: ~1.2 GiB, 2.6x each worker's limit
    files = _days(tmp_path / "in", days=80, nlat=128, nlon=192)
    size = sum(p.stat().st_size for p in files)
    assert size > 2.5 * LIMIT_MIB * 2**20
    store = tmp_path / "store.zarr"
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            memory_limit=f"{LIMIT_MIB}MiB",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        peaks = _sample_peaks(client)
        # a hang would be a paused worker: the watchdog turns it into a failure with a message
        cfg = _cfg(files, store, paused_timeout_s=60)
        rep = ingest(cfg, dask_address=cluster.scheduler_address)
        peaks.stop()
    # well below the limit: the pause threshold (80 %) is never approached by design
    assert 0 < max(peaks.rss.values()) < 0.8 * LIMIT_MIB, peaks.rss
    assert rep.appended == 80 * 24 and rep.problems == []
    s = Store(str(store))
    ds = s.open(chunks=None)
    assert ds.sizes["time"] == 80 * 24
    order = list(s.read_commit().variables)  # the store's order, which the hashes follow
    for d in (0, 41, 79):  # the values, and each step's hash, are the source's
        with xr.open_dataset(files[d]) as src:  # the store keeps latitudes ascending
            want = src["t2m"].sortby(["latitude", "longitude"]).values
        got = ds["2m_temperature"].isel(time=slice(24 * d, 24 * d + 24)).values
        np.testing.assert_array_equal(got, want)
        block = np.stack(
            [ds[v].isel(time=slice(24 * d, 24 * d + 24)).values for v in order], axis=1
        )
        np.testing.assert_array_equal(s.step_hashes()[24 * d : 24 * d + 24], hash_steps(block))
    assert pd.Timestamp(rep.end) == pd.Timestamp(ds.time.values[-1])
    mean = s.statistics().normalisation(["2m_temperature"])["mean"][0]
    sample = ds["2m_temperature"].isel(time=slice(0, None, 97)).values
    assert abs(mean - float(sample.mean())) < 1.0


def _paused_cluster():
    """An in-process worker that pauses at once: its pause threshold is below what this test
    process already holds."""
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.memory.pause": 0.05}):
        return LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            memory_limit="400MiB",
            dashboard_address=None,
        )


@pytest.mark.parametrize("first_write", [True, False])
def test_a_worker_that_stays_paused_fails_the_ingest_and_commits_nothing(tmp_path, first_write):
    from distributed import Client

    files = write_synthetic_files(tmp_path / "in", days=3, nlat=8, nlon=12, seed=2)
    store = tmp_path / "store.zarr"
    before = None
    if not first_write:
        ingest(_cfg(files[:2], store))
        before = Store(str(store)).read_commit()
    cfg = _cfg(files, store, paused_timeout_s=1.5)
    with _paused_cluster() as cluster, Client(cluster):
        with pytest.raises(PausedWorkerError) as e:
            ingest(cfg, dask_address=cluster.scheduler_address)
        (addr,) = cluster.scheduler_info["workers"]
    msg = str(e.value)
    assert "paused" in msg and addr in msg and "400 MiB limit" in msg
    assert "nothing was committed" in msg
    s = Store(str(store))
    after = s.read_commit()
    if first_write:
        assert after is None
    else:
        assert after is not None and before is not None
        assert (after.version, after.n_time, after.end) == (before.version, 48, before.end)
        assert s.open(chunks=None).sizes["time"] == 48
    # the next run (here without the cluster) does the work
    rep = ingest(cfg)
    assert rep.appended == (72 if first_write else 24)
    assert Store(str(store)).open(chunks=None).sizes["time"] == 72
