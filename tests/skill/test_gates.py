"""Gates over a scorecard: pass, fail with reasons, baselines where the teacher beats them."""

import numpy as np
import xarray as xr

from wxmodels.config.evaluate import GateConfig
from wxmodels.skill import scorecard as scj
from wxmodels.skill.gates import check_gates


def _card(rmse: dict[str, list[float]]) -> xr.DataArray:
    models = list(rmse)
    # model x metric (rmse, acc: same numbers, acc unused) x variable (1) x lead (2)
    data = np.stack([np.array([rmse[m], rmse[m]])[:, None, :] for m in models])
    return xr.DataArray(
        data,
        dims=("model", "metric", "variable", "lead_time"),
        coords={
            "model": models,
            "metric": ["rmse", "acc"],
            "variable": ["2m_temperature"],
            "lead_time": [1.0, 6.0],
        },
    )


def test_pass_and_fail_with_reasons():
    sc = _card(
        {
            "teacher": [1.0, 2.0],
            "persistence": [1.5, 1.9],
            "climatology": [3.0, 3.0],
            "good": [1.02, 2.05],
            "bad": [1.2, 2.0],
            "nan": [np.nan, 2.0],
        }
    )
    cfg = GateConfig(max_rmse_increase=0.05)
    assert check_gates(sc, "good", cfg).passed
    bad = check_gates(sc, "bad", cfg)
    assert not bad.passed and "2m_temperature @1h: RMSE 1.2 > teacher 1 +5%" in bad.reasons[0]
    assert "not finite" in check_gates(sc, "nan", cfg).reasons[0]


def test_must_beat_baselines_only_where_the_teacher_does():
    # the teacher loses to persistence at 6 h, so a candidate may too; at 1 h it must win
    sc = _card(
        {
            "teacher": [1.0, 2.0],
            "persistence": [1.04, 1.9],
            "climatology": [3.0, 3.0],
            "cand": [1.045, 2.05],
        }
    )
    res = check_gates(sc, "cand", GateConfig(max_rmse_increase=0.05))
    assert res.reasons == [
        "2m_temperature @1h: RMSE 1.045 does not beat persistence 1.04 (the teacher does: 1)"
    ]
    loose = GateConfig(max_rmse_increase=0.05, beat_persistence=False)
    assert check_gates(sc, "cand", loose).passed


def test_parity_and_scope():
    sc = _card(
        {"teacher": [1.0, 2.0], "persistence": [2, 3], "climatology": [3, 3], "c": [1.0, 9.0]}
    )
    cfg = GateConfig(leads_h=[1])
    assert check_gates(sc, "c", cfg).passed
    assert not check_gates(sc, "c", cfg, parity=0.1).passed
    assert check_gates(sc, "c", cfg, parity=0.1, parity_gated=False).passed


def test_scorecard_json_round_trip():
    sc = _card({"teacher": [1.0, np.nan], "x": [2.0, 3.0]})
    back = scj.from_json(scj.to_json(sc))
    xr.testing.assert_allclose(back, sc.assign_coords(lead_time=[1.0, 6.0]))
