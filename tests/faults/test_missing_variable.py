"""Item 7 of the fault suite: an input file that lacks a configured variable is set aside by
name (moved to quarantine/ with its reason, for a landing directory) and the rest goes on; the
scheduled ingest does not stall on it, and the corrected file is taken when it arrives."""

from __future__ import annotations

import xarray as xr

from tests.data.test_crash import VARS
from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store
from wxmodels.data.synthetic import write_synthetic_files


def test_file_missing_a_variable_is_quarantined_by_name(tmp_path):
    landing = tmp_path / "landing"
    files = write_synthetic_files(landing, days=4, nlat=5, nlon=6, seed=1)
    bad = files[2]
    with xr.open_dataset(bad) as ds:
        broken = ds.drop_vars("u10").load()
    good_copy = tmp_path / "day3-good.nc"
    bad.rename(good_copy)
    broken.to_netcdf(bad)
    cfg = DataConfig.model_validate(
        {
            "source": {"kind": "landing", "directory": str(landing), "accumulation_hours": 1.0},
            "store": str(tmp_path / "store.zarr"),
            "variables": VARS,
        }
    )
    rep = ingest(cfg)
    (problem,) = rep.problems
    assert problem["path"].endswith(bad.name)
    assert "lacks the configured variable(s) 10m_u_component_of_wind" in problem["reason"]
    assert rep.appended == 2 * 24  # days 1-2; day 4 waits behind the missing day 3
    assert (landing / "quarantine" / bad.name).exists()
    reason = (landing / "quarantine" / f"{bad.name}.reason.txt").read_text()
    assert "10m_u_component_of_wind" in reason
    again = ingest(cfg)  # the next scheduled run: no failure, no stall on the bad file
    assert again.appended == 0
    good_copy.rename(bad)  # the provider delivers the corrected day
    fixed = ingest(cfg)
    assert fixed.appended == 2 * 24 and fixed.problems == []
    assert Store(cfg.store).read_commit().n_time == 4 * 24
