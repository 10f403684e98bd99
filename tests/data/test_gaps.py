"""Records with known gaps (winters only): stored past each gap with the missing steps kept
missing and recorded, never filled; no training or scoring window straddles a gap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from wxmodels.config.data import DataConfig, SplitConfig
from wxmodels.data.fields import load_fields, make_split
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store


def _winter(d, year: int) -> None:
    """Daily 2 m temperature for December ``year`` .. February ``year + 1``."""
    t = pd.date_range(f"{year}-12-01", f"{year + 1}-02-28", freq="D")
    rng = np.random.default_rng(year)
    x = 270.0 + rng.normal(0, 3, (len(t), 3, 4))
    xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), x.astype("f4"), {"units": "K"})},
        coords={"time": t, "latitude": [50.0, 47.5, 45.0], "longitude": [0.0, 2.5, 5.0, 7.5]},
    ).to_netcdf(d / f"t2m_djf_{year}.nc")


def _cfg(tmp_path, gaps: str) -> DataConfig:
    return DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": [str(tmp_path / "in" / "*.nc")]},
            "store": str(tmp_path / f"{gaps}.zarr"),
            "variables": ["2m_temperature"],
            "time_chunk": 90,
            "gaps": gaps,
        }
    )


@pytest.fixture
def winters(tmp_path):
    (tmp_path / "in").mkdir()
    for y in (2000, 2001, 2002):
        _winter(tmp_path / "in", y)
    return tmp_path


def test_without_leave_only_the_first_winter_is_stored(winters):
    rep = ingest(_cfg(winters, "refuse"))
    assert rep.end == "2001-02-28 00:00:00" and "wait for the missing ones" in rep.gap


def test_three_winters_are_stored_with_their_gaps_recorded(winters):
    cfg = _cfg(winters, "allow")
    rep = ingest(cfg)
    assert (rep.start, rep.end) == ("2000-12-01 00:00:00", "2003-02-28 00:00:00")
    assert "2 gap(s) kept missing" in rep.gap
    store = Store(cfg.store)
    gaps = store.read_commit().history[-1]["gaps"]
    assert gaps == [
        ["2001-03-01 00:00:00", "2001-11-30 00:00:00", 275],
        ["2002-03-01 00:00:00", "2002-11-30 00:00:00", 275],
    ]
    ds = store.open()
    assert ds.sizes["time"] == len(pd.date_range("2000-12-01", "2003-02-28"))
    assert ds["2m_temperature"].sel(time="2001-06-15").isnull().all()  # never filled
    with xr.open_dataset(winters / "in" / "t2m_djf_2001.nc") as src:
        np.testing.assert_allclose(
            ds["2m_temperature"].sel(time="2002-01-10").values,
            src["t2m"].sel(time="2002-01-10").sortby("latitude").values,
            rtol=1e-6,
        )
    f = load_fields(store, cfg.variables)
    assert f.complete.sum() == 3 * 90
    split = make_split(f, SplitConfig(val_start="2001-12-01", test_start="2002-12-01", gap_hours=0))
    for part in ("train", "val", "test"):
        inits = split.inits(f, part, history=2, lead_steps=5)
        assert len(inits) > 0
        windows = inits[:, None] + np.arange(-1, 6)
        assert f.complete[windows].all(), part  # no window straddles a gap
    # the next winter arrives: the store goes on past the next gap
    _winter(winters / "in", 2003)
    rep = ingest(cfg)
    assert rep.end == "2004-02-28 00:00:00" and rep.appended == 275 + 90
    # the climatology and the statistics are fitted on the data alone
    stats = store.statistics().normalisation()
    assert 265 < stats["mean"][0] < 275
