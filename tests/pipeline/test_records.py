"""Stage records: strict, frozen, JSON round trips (NaN and infinities kept), one presenter."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from flows.state import load_latest, save_latest
from tests.factories import tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline.present import candidate_rows, matrix_rows, scorecard_rows
from wxmodels.pipeline.records import (
    Candidate,
    Evaluation,
    Gate,
    MatrixResult,
    Promotion,
    TeacherSummary,
)

SCORES = {
    m: {"rmse": {"2m_temperature": {"1": x, "3": 2 * x}}}
    for m, x in (("teacher", 1.0), ("small", 1.1), ("persistence", 2.0))
}


def _evaluation(tmp_path) -> Evaluation:
    cand = Candidate(
        name="small",
        id="c-1",
        label="distill+int8",
        method="distill+int8",
        onnx=str(tmp_path / "m.onnx"),
        dir=str(tmp_path),
        pack_bytes=1000,
        onnx_bytes=4000,
        params=10,
        sparsity=0.0,
        parity=1e-7,
        latency_ms_batch1=0.5,
        gate=Gate(passed=False, reasons=["a", "b", "c", "d"]),
        relative_rmse=math.inf,
        pareto=True,
    )
    return Evaluation(
        id="e-1",
        dir=str(tmp_path),
        teacher=TeacherSummary(
            id="t-1", onnx="t.onnx", onnx_bytes=100_000, params=99, latency_ms_batch1=2.0
        ),
        test_window=("2024-01-01", "2024-01-02"),
        n_inits=4,
        scorecard={**SCORES, "nan": {"rmse": {"x": {"1": math.nan}}}},
        candidates=[cand],
        pareto=["small"],
    )


def test_round_trip_keeps_nan_and_infinity(tmp_path):
    ev = _evaluation(tmp_path)
    ev.write(tmp_path / "evaluation.json")
    again = Evaluation.load(tmp_path / "evaluation.json")
    assert again.candidates[0].relative_rmse == math.inf
    assert math.isnan(again.scorecard["nan"]["rmse"]["x"]["1"])
    assert again.candidate("small").gate.reasons == ["a", "b", "c", "d"]


def test_records_are_strict_and_frozen(tmp_path):
    ev = _evaluation(tmp_path)
    with pytest.raises(ValidationError, match="size_bytes"):
        Evaluation.model_validate({**ev.model_dump(), "size_bytes": 1})  # a misspelt field
    with pytest.raises(ValidationError):
        ev.id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Promotion(model="m", version="v", kind="student", cell="c")  # kind is teacher|candidate


def test_one_presenter_for_tables_and_cli(tmp_path):
    ev = _evaluation(tmp_path)
    rows = scorecard_rows(ev)
    assert [r["model"] for r in rows] == ["teacher", "small", "persistence"]
    small = rows[1]
    assert small["bytes"] == 1000 and small["rmse 2m_temperature 3h"] == 2.2
    assert small["gate"] == "fail: a; b; c" and small["pareto"] == "yes"
    cands = candidate_rows(ev)
    assert cands[1]["ratio"] == 100.0 and cands[1]["speedup"] == 4.0
    m = matrix_rows(MatrixResult(cells=[], failures={"broken": "ValueError: no"}))
    assert m == [
        {
            "cell": "broken",
            "recipe": "",
            "params": None,
            "pack_bytes": None,
            "sparsity": None,
            "parity": None,
            "wall_s": None,
            "error": "ValueError: no",
        }
    ]


def test_latest_stage_records_round_trip(tmp_path):
    cfg = CycleConfig.model_validate(tiny_cycle_config(tmp_path))
    ev = _evaluation(tmp_path).model_copy(update={"scorecard": SCORES})  # no NaN: == holds
    save_latest(cfg, "evaluate", ev)
    assert load_latest(cfg, "evaluate", Evaluation, "test") == ev
    promos = [Promotion(model="m", version="v", kind="teacher", cell="teacher")]
    save_latest(cfg, "promote", promos)
    assert load_latest(cfg, "promote", list[Promotion], "test") == promos
