"""Real reanalysis data from ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wxmodels.config import load_config
from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import ingest
from wxmodels.data.store import Store

pytestmark = pytest.mark.realdata
REPO = Path(__file__).resolve().parents[2]
WFDE5_VARS = load_config(REPO / "configs/wfde5-uk.yaml").data.variables


def test_wfde5_ingest(shared_data, tmp_path):
    cfg = DataConfig.model_validate(
        {
            "source": {"kind": "files", "paths": [str(shared_data / "wfde5_uk_2017-01" / "*.nc")]},
            "store": str(tmp_path / "s.zarr"),
            "variables": WFDE5_VARS,
        }
    )
    rep = ingest(cfg)
    assert (rep.appended, rep.problems) == (744, [])
    assert ingest(cfg).appended == 0
    ds = Store(str(tmp_path / "s.zarr")).open()
    assert ds.sizes == {"time": 744, "lat": 20, "lon": 28}
    t = ds["2m_temperature"]
    assert t.attrs["units"] == "K" and 264 < float(t.min()) < float(t.max()) < 287
    valid = np.isfinite(t.isel(time=0).values)
    assert valid.sum() == 250  # land points only
    pr = ds["total_precipitation_rate"]
    assert pr.attrs["units"] == "mm h-1" and 5 < float(pr.max()) < 6.5  # 1.66e-3 kg m-2 s-1


def test_era5_grib_levels_and_members(shared_data, tmp_path):
    cfg = DataConfig.model_validate(
        {
            "source": {
                "kind": "files",
                "paths": [str(shared_data / "fixtures" / "era5-levels-members.grib")],
            },
            "store": str(tmp_path / "g.zarr"),
            "variables": ["temperature_850hPa", "geopotential_500hPa"],
        }
    )
    assert ingest(cfg).appended == 4
    ds = Store(str(tmp_path / "g.zarr")).open()
    assert ds.sizes == {"time": 4, "lat": 61, "lon": 120}
    assert ds.lat.values[0] == -90 and ds.lon.values[0] == -180
    z = ds["geopotential_500hPa"]
    assert 45000 < float(z.mean()) < 56000  # m2 s-2, ensemble mean


def test_ncl_storm_files_without_time_or_units(shared_data, tmp_path):
    cfg = load_config(
        REPO / "configs" / "ncl-storm.yaml",
        [
            f"data.store={tmp_path}/s.zarr",
            f"data.source.paths=[{shared_data}/ncl_storm_1996-01/*storm.cdf]",
        ],
    )
    rep = ingest(cfg.data)
    assert (rep.appended, rep.problems) == (64, [])
    # the missing steps are kept as missing, and reported
    assert sorted(rep.missing) == [
        "10m_v_component_of_wind@1996-01-09T06:00",
        "10m_v_component_of_wind@1996-01-14T06:00",
        "2m_temperature@1996-01-09T06:00",
        "v_component_of_wind_500hPa@1996-01-14T00:00",
    ]
    store = Store(cfg.data.store)
    ds = store.open()
    assert ds.sizes == {"time": 64, "lat": 33, "lon": 36}
    assert str(ds.time.values[-1])[:16] == "1996-01-20T18:00"
    valid = store.static()["valid_mask"].values
    assert abs(1 - valid.mean() - 0.189) < 0.01  # the corners outside the analysis area
    p = ds["mean_sea_level_pressure"]
    assert 95000 < float(p.min()) < float(p.max()) < 105000


@pytest.mark.slow
def test_small_teacher_beats_persistence_on_wfde5(shared_data, tmp_path):
    """A one-minute teacher on real data already beats persistence for Tair at 1 h."""
    from wxmodels.pipeline import evaluate as ev
    from wxmodels.pipeline.teacher import train_teacher

    cfg = load_config(
        REPO / "configs" / "wfde5-uk.yaml",
        [
            f"workdir={tmp_path}/w",
            f"data.store={tmp_path}/s.zarr",
            f"data.source.paths=[{shared_data}/wfde5_uk_2017-01/*.nc]",
            "net.width=16",
            "train.epochs=20",
            "train.rollout_epochs=2",
            "train.max_minutes=1.0",
            "train.threads=2",
            "evaluate.leads_h=[1,3]",
            "evaluate.init_stride_h=3",
        ],
    )
    ingest(cfg.data)
    teacher = train_teacher(cfg)
    s = ev.score_model(cfg, "teacher", f"{teacher.dir}/model.onnx")
    b = ev.score_baselines(cfg)
    t_rmse = s.scores["teacher"]["rmse"]["2m_temperature"]["1"]
    p_rmse = b.scores["persistence"]["rmse"]["2m_temperature"]["1"]
    c_rmse = b.scores["climatology"]["rmse"]["2m_temperature"]["1"]
    print("tair 1h rmse: teacher %.3f persistence %.3f climatology %.3f" % (t_rmse, p_rmse, c_rmse))
    assert t_rmse < p_rmse < c_rmse, (t_rmse, p_rmse, c_rmse)
