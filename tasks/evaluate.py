"""Validation tasks: score a model, score the baselines, time them all, assemble and gate."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline import evaluate as ev

__all__ = ["assemble_task", "latency_task", "score_baselines_task", "score_model_task"]


@task(name="score-model", task_run_name="score-{name}", timeout_seconds=3600)
def score_model_task(
    config: CycleConfig, name: str, onnx_path: str, teacher_dir: str
) -> dict[str, Any]:
    """Forecast the test window with the ONNX model in onnxruntime and score it."""
    rec = ev.score_model(config, name, onnx_path, teacher_dir)
    get_run_logger().info("%s scored on %d inits in %.1f s", name, rec["n_inits"], rec["wall_s"])
    return rec


@task(name="score-baselines", timeout_seconds=3600)
def score_baselines_task(config: CycleConfig, teacher_dir: str) -> dict[str, Any]:
    """Persistence and climatology on the same inits and leads."""
    return ev.score_baselines(config, teacher_dir)


@task(name="latency", timeout_seconds=3600)
def latency_task(config: CycleConfig, models: dict[str, str]) -> dict[str, dict[str, float]]:
    """onnxruntime latency of every model, one after another (so timings compare)."""
    lat = ev.measure_latencies(config, models)
    for name, v in lat.items():
        get_run_logger().info(
            "%s: %.3f ms (batch 1), %.3f ms (batch 16)", name, v["batch1_ms"], v["batch16_ms"]
        )
    return lat


def _rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    sc = evaluation["scorecard"]
    t = evaluation["teacher"]
    rows = []
    entries = [("teacher", "teacher", t["size_bytes"], t["latency_ms_batch1"], None)]
    entries += [
        (c["name"], c["label"], c["size_bytes"], c["latency_ms_batch1"], c["gate"])
        for c in evaluation["candidates"]
    ]
    entries += [(b, "baseline", None, None, None) for b in ("persistence", "climatology")]
    for name, label, size, lat, gate in entries:
        row: dict[str, Any] = {
            "model": name,
            "recipe": label,
            "size_bytes": size,
            "latency_ms_b1": None if lat is None else round(lat, 4),
        }
        for v, leads in sc[name]["rmse"].items():
            for lead, x in leads.items():
                row[f"rmse {v} {lead}h"] = None if x is None else round(x, 5)
        row["gate"] = (
            "-"
            if gate is None
            else ("pass" if gate["passed"] else "fail: " + "; ".join(gate["reasons"][:3]))
        )
        rows.append(row)
    return rows


@task(name="assemble-scorecard")
def assemble_task(
    config: CycleConfig,
    teacher: dict[str, Any],
    cells: list[dict[str, Any]],
    scores: list[dict[str, Any]],
    baselines: dict[str, Any],
    latencies: dict[str, dict[str, float]],
    failures: dict[str, str],
) -> dict[str, Any]:
    """Scorecard and gates; published as a table artifact."""
    log = get_run_logger()
    evaluation = ev.assemble(config, teacher, cells, scores, baselines, latencies, failures)
    for c in evaluation["candidates"]:
        if c["gate"]["passed"]:
            log.info("%s passes the gates", c["name"])
        else:
            log.warning("%s fails the gates: %s", c["name"], "; ".join(c["gate"]["reasons"][:5]))
    create_table_artifact(
        key="scorecard",
        table=_rows(evaluation),
        description=f"Scorecard of every candidate vs the teacher and "
        f"baselines, test window {evaluation['test_window']}",
    )
    for p in evaluation.get("plots", []):
        png = base64.b64encode(Path(p).read_bytes()).decode()
        create_markdown_artifact(
            key="skill-plot",
            markdown=f"![{Path(p).stem}](data:image/png;base64,{png})",
            description="RMSE against lead time",
        )
    return evaluation
