"""Compression cell task."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline.matrix import build_cell

__all__ = ["build_cell_task"]


@task(name="compress-cell", task_run_name="cell-{name}", timeout_seconds=3 * 3600)
def build_cell_task(config: CycleConfig, name: str, teacher_dir: str) -> dict[str, Any]:
    """Build one candidate from the teacher (torch steps, export, ONNX step)."""
    log = get_run_logger()
    rec = build_cell(config, name, teacher_dir)
    log.info(
        "cell %s (%s): %d params, %d bytes, parity %.2g, %.0f s",
        name,
        rec["label"],
        rec["params"],
        rec["size_bytes"],
        rec["parity"],
        rec["wall_s"],
    )
    return rec
