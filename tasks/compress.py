"""Compression cell task."""

from __future__ import annotations

from prefect import get_run_logger, task

from wxmodels.config.compress import CellConfig
from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline.matrix import build_cell
from wxmodels.pipeline.records import CellRecord

__all__ = ["build_cell_task"]


@task(name="compress-cell", task_run_name="cell-{cell.name}", timeout_seconds=3 * 3600)
def build_cell_task(config: CycleConfig, cell: CellConfig, teacher_dir: str) -> CellRecord:
    """Build one candidate from the teacher (torch steps, export, ONNX step)."""
    rec = build_cell(config, cell, teacher_dir)
    get_run_logger().info(
        "cell %s (%s): %d params, %d bytes packed, parity %.2g, %.0f s",
        rec.name,
        rec.label,
        rec.params,
        rec.pack_bytes,
        rec.parity,
        rec.wall_s,
    )
    return rec
