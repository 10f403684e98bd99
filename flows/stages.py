"""One flow per stage; each is also runnable alone through the CLI."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture

from flows.state import save_latest
from tasks.compress import build_cell_task
from tasks.evaluate import (
    assemble_task,
    incumbent_task,
    latency_task,
    score_baselines_task,
    score_model_task,
)
from tasks.ingest import ingest_task
from tasks.promote import promote_task
from tasks.train import train_teacher_task
from wxmodels.config.cycle import CycleConfig
from wxmodels.data.ingest import IngestReport
from wxmodels.errors import WxcError
from wxmodels.pipeline.matrix import describe_failure
from wxmodels.pipeline.present import matrix_rows
from wxmodels.pipeline.records import Evaluation, MatrixResult, Promotion, TeacherRecord

__all__ = ["compress_flow", "evaluate_flow", "ingest_flow", "promote_flow", "train_flow"]


@flow(name="ingest", flow_run_name="ingest-{config.name}")
def ingest_flow(config: CycleConfig) -> IngestReport:
    """Append new source data to the store (idempotent)."""
    rep = ingest_task(config.data, config.runtime.dask_address)
    save_latest(config, "ingest", rep)
    return rep


@flow(name="train", flow_run_name="train-{config.name}")
def train_flow(config: CycleConfig, warm_start: str | None = None) -> TeacherRecord:
    """Train (or reuse) the teacher on the store's current version."""
    rec = train_teacher_task(config, warm_start)
    save_latest(config, "train", rec)
    return rec


def _gather(
    futures: dict[str, PrefectFuture], progress: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Results and failures of ``futures``; ``progress`` names a progress artifact (the share
    of futures collected) that the UI shows while they run."""
    ok, failed = {}, {}
    art = create_progress_artifact(0.0, key=progress, description=progress) if progress else None
    for k, (name, fut) in enumerate(futures.items(), start=1):
        fut.wait()
        if art is not None:
            update_progress_artifact(art, 100.0 * k / len(futures))
        state = fut.state
        if state.is_completed():
            ok[name] = fut.result()
        else:
            exc = state.result(raise_on_failure=False)
            failed[name] = (
                describe_failure(exc) if isinstance(exc, BaseException) else str(state.message)
            )
    return ok, failed


@flow(name="compress", flow_run_name="compress-{config.name}")
def compress_flow(config: CycleConfig, teacher_dir: str) -> MatrixResult:
    """Build every cell of the matrix in parallel; a failed cell is reported, the rest go on."""
    log = get_run_logger()
    # longest first: the workers then finish together instead of waiting on one last distillation
    order = sorted(config.compress.cells, key=lambda c: -c.cost)
    futures = {c.name: build_cell_task.submit(config, c, teacher_dir) for c in order}
    cells, failures = _gather(futures, progress="compression-matrix-progress")
    for name, err in failures.items():
        log.error("cell %s failed: %s", name, err)
    matrix = MatrixResult(cells=list(cells.values()), failures=failures)
    create_table_artifact(
        key="compression-matrix",
        table=matrix_rows(matrix),
        description="Cells of the compression matrix",
    )
    if not cells:
        raise WxcError(f"every cell of the matrix failed; first: {next(iter(failures.values()))}")
    save_latest(config, "compress", matrix)
    return matrix


@flow(name="evaluate", flow_run_name="evaluate-{config.name}")
def evaluate_flow(config: CycleConfig, teacher: TeacherRecord, matrix: MatrixResult) -> Evaluation:
    """Score teacher, candidates and baselines on the test window; time them; apply gates.

    The registry's current teacher, when it is another one, is scored too (as ``incumbent``):
    the promotion of the new teacher depends on it.
    """
    cells = matrix.cells
    models = {"teacher": teacher.onnx, **{c.name: c.onnx for c in cells}}
    incumbent = incumbent_task(config, teacher)
    score_f = {n: score_model_task.submit(config, n, p) for n, p in models.items()}
    if incumbent is not None and incumbent.comparable:
        score_f["incumbent"] = score_model_task.submit(config, "incumbent", incumbent.onnx)
    base_f = score_baselines_task.submit(config)
    scores, failed = _gather(score_f)
    failed = {**matrix.failures, **failed}
    if "teacher" in failed:
        raise WxcError(f"scoring the teacher failed: {failed['teacher']}")
    kept = [c for c in cells if c.name in scores]
    # timed alone, after the scoring, so that no other task competes for the cores
    latencies = latency_task.submit(config, {n: models[n] for n in scores if n in models}).result()
    evaluation = assemble_task(
        config, teacher, kept, list(scores.values()), base_f.result(), latencies, failed, incumbent
    )
    save_latest(config, "evaluate", evaluation)
    return evaluation


@flow(name="promote", flow_run_name="promote-{config.name}")
def promote_flow(config: CycleConfig, evaluation: Evaluation, teacher_dir: str) -> list[Promotion]:
    """Publish the teacher and the profile winners to the registry."""
    promoted = promote_task(config, evaluation, teacher_dir)
    save_latest(config, "promote", promoted)
    return promoted
