"""Gates over a scorecard: pass, fail with reasons, baselines where the teacher beats them."""

import numpy as np
import xarray as xr

from wxmodels.config.evaluate import GateConfig
from wxmodels.skill import scorecard as scj
from wxmodels.skill.gates import GateResult, check_gates, check_latency


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


def test_rules_from_config_absolute_relative_baseline_and_region():
    from wxmodels.config.evaluate import GateRule

    sc = _card(
        {
            "teacher": [1.0, 2.0],
            "persistence": [1.5, 2.5],
            "climatology": [3.0, 3.0],
            "linear": [1.1, 1.9],
            "cand": [1.08, 2.1],
        }
    )
    # the default 5 % is too tight at 1 h (8 %), a rule loosens it there
    base = GateConfig(max_rmse_increase=0.05)
    assert not check_gates(sc, "cand", base).passed
    loose = GateConfig(max_rmse_increase=0.05, rules=[GateRule(leads_h=[1], max_rmse_increase=0.1)])
    assert check_gates(sc, "cand", loose).passed
    # an absolute limit and a baseline to beat whatever the teacher does
    strict = GateConfig(
        max_rmse_increase=0.1,
        rules=[GateRule(leads_h=[6], max_rmse=2.05), GateRule(beat=["linear"], leads_h=[6])],
    )
    res = check_gates(sc, "cand", strict)
    assert not res.passed
    assert any("6h" in r and "2.05" in r for r in res.reasons)
    assert any("does not beat linear 1.9" in r for r in res.reasons)
    # a rule on a region reads that region's scorecard
    north = _card({"teacher": [1.0, 2.0], "cand": [5.0, 5.0]})
    regional = GateConfig(
        max_rmse_increase=0.1,
        beat_persistence=False,
        rules=[GateRule(region="north", max_rmse=4.0)],
    )
    res = check_gates(sc, "cand", regional, regions={"north": north})
    assert not res.passed and all("north" in r for r in res.reasons)
    assert check_gates(sc, "cand", regional, regions={"north": sc}).passed


def test_a_candidate_slower_than_the_teacher_fails():
    ok = GateResult(passed=True)
    assert check_latency(ok, 0.9, 1.0, 1.0).passed
    slow = check_latency(ok, 5.0, 1.0, 1.0)
    assert not slow.passed and "slower than the teacher" in slow.reasons[0]
    assert check_latency(ok, 5.0, 1.0, None).passed  # not gated
    assert check_latency(ok, None, 1.0, 1.0).passed  # not measured
    assert check_latency(GateResult(False, ["worse"]), 5.0, 1.0, 1.0).reasons[0] == "worse"
