"""Validation tasks: score a model, score the baselines, time them all, assemble and gate."""

from __future__ import annotations

import base64
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.common import use_credentials
from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline import champion
from wxmodels.pipeline import evaluate as ev
from wxmodels.pipeline.present import scorecard_rows
from wxmodels.pipeline.records import (
    BaselineScores,
    CellRecord,
    Evaluation,
    Incumbent,
    Latency,
    ModelScores,
    TeacherRecord,
)

__all__ = [
    "assemble_task",
    "incumbent_task",
    "latency_task",
    "score_baselines_task",
    "score_model_task",
]


@task(name="current-teacher", retries=2, retry_delay_seconds=5)
def incumbent_task(config: CycleConfig, teacher: TeacherRecord) -> Incumbent | None:
    """The registry's current teacher, pulled and verified, when it is not this teacher: it is
    scored on the same test window and the new teacher must not be worse to replace it."""
    log = get_run_logger()
    use_credentials(config.promote.credentials_block)
    inc = champion.challenge(config, teacher)
    if inc is None:
        log.info("no other teacher in the registry: nothing to compare the new teacher with")
    else:
        log.info(
            "current teacher %s@%s (%s) is scored beside the new one",
            config.name,
            inc.version,
            inc.teacher_id,
        )
    return inc


@task(name="score-model", task_run_name="score-{name}", timeout_seconds=3600)
def score_model_task(config: CycleConfig, name: str, onnx_path: str) -> ModelScores:
    """Forecast the test window with the ONNX model in onnxruntime and score it."""
    rec = ev.score_model(config, name, onnx_path)
    get_run_logger().info("%s scored on %d inits in %.1f s", name, rec.n_inits, rec.wall_s)
    return rec


@task(name="score-baselines", timeout_seconds=3600)
def score_baselines_task(config: CycleConfig) -> BaselineScores:
    """Persistence and climatology on the same inits and leads."""
    return ev.score_baselines(config)


@task(name="latency", timeout_seconds=3600)
def latency_task(config: CycleConfig, models: dict[str, str]) -> dict[str, Latency]:
    """onnxruntime latency of every model, one after another (so timings compare)."""
    lat = ev.measure_latencies(config, models)
    for name, v in lat.items():
        get_run_logger().info(
            "%s: %.3f ms (batch 1), %.3f ms (batch 16)", name, v.batch1_ms, v.batch16_ms
        )
    return lat


@task(name="assemble-scorecard")
def assemble_task(
    config: CycleConfig,
    teacher: TeacherRecord,
    cells: list[CellRecord],
    scores: list[ModelScores],
    baselines: BaselineScores,
    latencies: dict[str, Latency],
    failures: dict[str, str],
    incumbent: Incumbent | None = None,
) -> Evaluation:
    """Scorecard and gates; published as a table artifact."""
    log = get_run_logger()
    evaluation = ev.assemble(
        config, teacher, cells, scores, baselines, latencies, failures, incumbent
    )
    inc = evaluation.incumbent
    if inc is not None:
        v = inc.verdict
        msg = "; ".join(v.reasons) or f"mean RMSE ratio {v.mean_ratio:.4f}"
        if v.promote:
            log.info("the new teacher may replace %s: %s", inc.version, msg)
        else:
            log.warning("the new teacher is worse than the current one (%s): %s", inc.version, msg)
    for c in evaluation.candidates:
        if c.gate.passed:
            log.info("%s passes the gates", c.name)
        else:
            log.warning("%s fails the gates: %s", c.name, "; ".join(c.gate.reasons[:5]))
    create_table_artifact(
        key="scorecard",
        table=scorecard_rows(evaluation),
        description=f"Scorecard of every candidate vs the teacher and "
        f"baselines, test window {list(evaluation.test_window)}",
    )
    for p in evaluation.plots:
        png = base64.b64encode(Path(p).read_bytes()).decode()
        create_markdown_artifact(
            key=Path(p).stem.replace("_", "-"),
            markdown=f"![{Path(p).stem}](data:image/png;base64,{png})",
            description=Path(p).stem.replace("_", " "),
        )
    return evaluation
