"""Teacher training task."""

from __future__ import annotations

from prefect import get_run_logger, task

from tasks.common import use_credentials
from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline.records import TeacherRecord
from wxmodels.pipeline.teacher import train_teacher

__all__ = ["train_teacher_task"]


@task(name="train-teacher", timeout_seconds=6 * 3600)
def train_teacher_task(config: CycleConfig, warm_start: str | None = None) -> TeacherRecord:
    """Train (or reuse) the teacher for the store's current version; returns its record."""
    use_credentials(config.promote.credentials_block)  # a warm start pulls from the registry
    rec = train_teacher(config, warm_start=warm_start)
    fit = rec.fit
    if rec.foreign is not None:
        get_run_logger().info(
            "teacher %s: the foreign ONNX file %s (sha256 %s), %d params",
            rec.id,
            rec.foreign["source"],
            rec.foreign["sha256"][:12],
            rec.params,
        )
        return rec
    get_run_logger().info(
        "teacher %s: %d params, best validation loss %.4f at epoch %d of %d, %.0f s",
        rec.id,
        rec.params,
        fit["best_val"],
        fit["best_epoch"] + 1,
        fit["epochs"],
        rec.wall_s,
    )
    return rec
