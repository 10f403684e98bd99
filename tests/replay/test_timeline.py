"""What the timeline's report computes: the training window, edge against teacher, cost
ratios, refusals, alias moves judged on the next period."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import make_fields, tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.data.fields import make_split
from wxmodels.pipeline.teacher import in_window
from wxmodels.replay.records import Delivered, LiveScores, Retrain, StoreState, Tick, Timeline
from wxmodels.replay.report import markdown, summary, timeline_rows


def test_train_window_keeps_the_last_part_of_the_training_inits(tmp_path):
    f = make_fields(nt=24 * 10)  # hourly, ten days
    raw = tiny_cycle_config(tmp_path)
    cfg = CycleConfig.model_validate(raw)
    split = make_split(f, cfg.data.split)
    inits = split.inits(f, "train", history=2, lead_steps=3)
    assert np.array_equal(in_window(inits, f, split, cfg), inits)
    raw["train"]["window"] = "2D"
    kept = in_window(inits, f, split, CycleConfig.model_validate(raw))
    end = f.times[split.train[1] - 1]
    assert 0 < len(kept) < len(inits)
    assert (f.times[kept] >= end - np.timedelta64(2, "D")).all()
    assert f.times[kept][0] - (end - np.timedelta64(2, "D")) < np.timedelta64(1, "h")
    raw["train"]["window"] = "two days"
    with pytest.raises(ValueError, match="not a period"):
        CycleConfig.model_validate(raw)


def _live(since: str, until: str, rmse: dict[str, float], models=("teacher", "edge")) -> LiveScores:
    return LiveScores(
        since=since,
        until=until,
        n_inits=10,
        models={m: f"v-{m}" for m in models},
        fit_end=since,
        scores={m: {"rmse": {"t2m": {"24": x}}} for m, x in rmse.items()},
    )


def _tick(k: int, time: str, ingest_s: float, live=None, retrain=None, aliases=None) -> Tick:
    return Tick(
        index=k,
        time=time,
        delivered=Delivered(files=1, preliminary=0, steps=30),
        store=StoreState(n_time=30 * (k + 1), start="x", end="y", bytes=2**20, version="v"),
        appended=30,
        revised=0,
        wall_s={"ingest": ingest_s},
        live=live,
        retrain=retrain,
        aliases=aliases or {},
    )


def test_summary_of_a_timeline():
    refused = Retrain(
        teacher_id="t-2",
        store_version="s",
        train_wall_s=10.0,
        cvp_wall_s=20.0,
        teacher_promoted=False,
        refused=["worse than the current teacher"],
    )
    base = {"climatology": 2.0, "persistence": 1.5, "ridge": 1.05}
    ticks = [
        _tick(0, "2020-01-01 00:00:00", 2.0, aliases={"edge": "e1", "teacher": "t1"}),
        _tick(
            1,
            "2020-02-01 00:00:00",
            2.0,
            _live("2020-01-01", "2020-02-01", {"teacher": 1.0, "edge": 1.01, **base}),
            aliases={"edge": "e2", "teacher": "t1"},
        ),
        _tick(
            2,
            "2021-02-01 00:00:00",
            2.4,
            _live(
                "2020-02-01",
                "2021-02-01",
                {"teacher": 1.0, "edge": 1.10, "edge-previous": 1.2, **base},
                models=("teacher", "edge", "edge-previous"),
            ),
            refused,
            aliases={"edge": "e2", "teacher": "t1"},
        ),
    ]
    tl = Timeline(
        name="x",
        replay={
            "start": "2020-01-01",
            "end": "2021-02-01",
            "ingest_every": "1M",
            "retrain_every": "1Y",
            "split": {"val": "3M", "test": "3M"},
            "revisions": None,
        },
        config="c.yaml",
        overrides=[],
        ticks=ticks,
    )
    s = summary(tl)
    assert s["ingest_ratio_last_first"] == pytest.approx(1.2)
    ev = s["edge_vs_teacher"]
    assert ev["ticks"] == 2 and ev["within_2pct_every_lead"] == 1
    assert ev["worst"] == pytest.approx(1.10)
    assert s["refusals"] == ["2021-02-01 00:00:00"]
    assert s["alias_moves_next_period"] == [
        {"tick": "2021-02-01 00:00:00", "alias": "edge", "ratio": pytest.approx(1.1 / 1.2)}
    ]
    # over the ticks the teacher beats every baseline, the edge does not beat ridge
    beats = s["beats_every_baseline_at_every_lead"]
    assert all(beats["teacher"].values()) and beats["edge"]["ridge"] is False
    rows = timeline_rows(tl)
    assert rows[1]["teacher_rel"] == 0.5 and rows[1]["best_baseline"] == "ridge"
    assert "teacher refused" in rows[2]["events"]
    assert "Teachers refused by the gate: 1" in markdown(tl)
