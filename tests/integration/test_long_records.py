"""Fast twins of the ten-year real-record configs (NCEP R1 daily SLP, ERA5 hourly skt at
Dhaka): the files ingest as they are, the climatology is the multi-year one, the baselines
reproduce the reference figures (FIELD-NOTES, computed independently), and a small teacher
trains and scores through the same code as the benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import REPO
from wxmodels.config.cycle import load_config
from wxmodels.data.fields import fit_climatology
from wxmodels.data.ingest import ingest
from wxmodels.data.stats import feature_names
from wxmodels.pipeline import evaluate as ev
from wxmodels.pipeline.context import load_run_data
from wxmodels.pipeline.teacher import train_teacher

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.realdata]

# RMSE at the first and last lead (per-cell linear regression, climatology of the training
# years), as in FIELD-NOTES; ours must agree within 3 %
CASES = {
    "ncep-slp-natl": {
        "dir": "ncep_slp_natl_2001-2010",
        "steps": 3652,
        "variable": "mean_sea_level_pressure",
        "scale": 100.0,  # Pa -> hPa
        "cell_linear": {"24": 5.70, "120": 9.41},
        "climatology": 9.77,
        "diurnal": False,
        "stride": 24,
    },
    "era5-skt-dhaka": {
        "dir": "era5_skt_dhaka_2015-2024",
        "steps": 87672,
        "variable": "skin_temperature",
        "scale": 1.0,
        "cell_linear": {"1": 0.74, "24": 1.58},
        "climatology": 2.19,
        "diurnal": True,
        "stride": 1,  # every hour, as the reference (the diurnal cycle makes errors hourly)
    },
}


@pytest.mark.parametrize("name", list(CASES))
def test_long_record_twin(name, shared_data, tmp_path):
    case = CASES[name]
    if not (shared_data / case["dir"]).is_dir():
        pytest.skip(f"{case['dir']} not in {shared_data}")
    cfg = load_config(
        REPO / "configs" / f"{name}.yaml",
        [
            f"workdir={tmp_path}/w",
            f"data.store={tmp_path}/s.zarr",
            f"data.source.paths=[{shared_data}/{case['dir']}/*.nc]",
            "net.width=8",
            "train.epochs=1",
            "train.rollout_epochs=0",
            "train.max_minutes=0.3",
            "train.init=scratch",
            f"evaluate.init_stride_h={case['stride']}",
        ],
    )
    report = ingest(cfg.data)
    assert report.appended == case["steps"]
    assert ingest(cfg.data).appended == 0  # the same files again: nothing

    run = load_run_data(cfg)
    f, split = run.fields, run.split
    assert f.times[split.val[0]].year == int(cfg.data.split.val_start[:4])
    assert f.times[split.test[0]].year == int(cfg.data.split.test_start[:4])
    acc = fit_climatology(f, split.train)
    used = [feature_names()[i] for i in acc.terms()]
    assert "cos_annual3" in used  # the multi-year fit, not the shorter-than-a-year fallback
    assert ("cos_diurnal1" in used) == case["diurnal"]
    assert ("cd1ca1" in used) == case["diurnal"]

    b = ev.score_baselines(cfg)
    rm = {m: b.scores[m]["rmse"][case["variable"]] for m in b.scores}
    s = case["scale"]
    for lead, ref in case["cell_linear"].items():
        assert rm["cell_linear"][lead] / s == pytest.approx(ref, rel=0.03), (lead, rm)
    clim = np.mean(list(rm["climatology"].values())) / s
    assert clim == pytest.approx(case["climatology"], rel=0.02)
    first = next(iter(case["cell_linear"]))
    assert rm["ridge"][first] < rm["cell_linear"][first] < rm["persistence"][first]

    teacher = train_teacher(cfg)
    # the model scored on daily inits only (a rollout per init is what costs here)
    daily = cfg.model_copy(
        update={"evaluate": cfg.evaluate.model_copy(update={"init_stride_h": 24})}
    )
    t = ev.score_model(daily, "teacher", f"{teacher.dir}/model.onnx").scores["teacher"]
    t = t["rmse"][case["variable"]]
    assert all(np.isfinite(v) for v in t.values())
    assert t[first] < rm["climatology"][first]  # even one epoch learns the anomaly persists
