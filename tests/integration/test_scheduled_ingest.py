"""Scheduled use: a landing directory receives one day of WFDE5 files per scheduled run; each
run of the ingest flow ingests exactly that day."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.integration.test_real_data import WFDE5_VARS
from wxmodels.config.cycle import CycleConfig
from wxmodels.data.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.realdata]


def _deliver_day(src_dir, landing, day: int) -> None:
    """What the provider drops for one day: the six variables, one file each."""
    for f in sorted(src_dir.glob("*.nc")):
        with xr.open_dataset(f) as ds:
            part = ds.sel(time=slice(f"2017-01-{day:02d}T00", f"2017-01-{day:02d}T23")).load()
        part.to_netcdf(landing / f"{f.stem}_201701{day:02d}.nc")


def test_landing_directory_one_day_per_run(shared_data, tmp_path, prefect_server):
    from flows.stages import ingest_flow
    from tests.factories import tiny_cycle_config

    landing = tmp_path / "landing"
    landing.mkdir()
    raw = tiny_cycle_config(tmp_path)
    raw["data"] = {
        "source": {
            "kind": "landing",
            "directory": str(landing),
            "pattern": "*.nc",
            "archive": True,
        },
        "store": str(tmp_path / "store.zarr"),
        "variables": WFDE5_VARS,
    }
    cfg = CycleConfig.model_validate(raw)
    src = shared_data / "wfde5_uk_2017-01"
    for day in (1, 2, 3):
        _deliver_day(src, landing, day)
        rep = ingest_flow(cfg)
        assert rep.appended == 24
        assert rep.start[:10] == "2017-01-01"
        assert rep.end == f"2017-01-{day:02d} 23:00:00"
        assert rep.read == 6
        assert len(list((landing / "ingested").glob("*.nc"))) == 6 * day
    rep = ingest_flow(cfg)  # a run with nothing delivered
    assert (rep.appended, rep.read) == (0, 0)
    # the store's writer lock has its companion in Prefect: one slot, free again
    from prefect.client.orchestration import get_client

    from tasks.common import store_slot_name

    with get_client(sync_client=True) as c:
        lim = c.read_global_concurrency_limit_by_name(store_slot_name(cfg.data.store))
    assert (lim.limit, lim.active_slots) == (1, 0)
    ds = Store(cfg.data.store).open()
    with xr.open_dataset(src / "air_temperature.nc") as ref:
        np.testing.assert_array_equal(
            ds["2m_temperature"].values, ref["Tair"].isel(time=slice(0, 72)).values
        )
