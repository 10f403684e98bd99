"""The operational cycle: ingest -> teacher -> compression matrix -> validate -> promote."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger

from flows.runners import dask_runner, local_cluster
from flows.stages import compress_flow, evaluate_flow, ingest_flow, promote_flow, train_flow
from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline.present import cycle_report

__all__ = ["cycle_flow"]


@flow(name="cycle", flow_run_name="cycle-{config.name}")
def cycle_flow(config: CycleConfig, warm_start: str | None = None) -> dict[str, Any]:
    """Run the five stages as subflows; the matrix and validation share one Dask cluster.

    Returns the cycle report (see :func:`wxmodels.pipeline.report.cycle_report`).
    """
    log = get_run_logger()
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    ingest = ingest_flow(config)
    wall["ingest"] = time.perf_counter() - t0
    t = time.perf_counter()
    teacher = train_flow(config, warm_start)
    wall["train"] = time.perf_counter() - t
    with local_cluster(config.runtime) as address:
        runner = dask_runner(config.runtime, address)
        t = time.perf_counter()
        matrix = compress_flow.with_options(task_runner=runner)(config, teacher.dir)
        wall["compress"] = time.perf_counter() - t
        t = time.perf_counter()
        evaluation = evaluate_flow.with_options(task_runner=dask_runner(config.runtime, address))(
            config, teacher, matrix
        )
        wall["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    promoted = promote_flow(config, evaluation, teacher.dir)
    wall["promote"] = time.perf_counter() - t
    wall["total"] = time.perf_counter() - t0
    report = cycle_report(config.name, ingest, teacher, evaluation, promoted, wall)
    log.info(
        "cycle done in %.0f s: %d candidates, %d passed, promoted %s",
        wall["total"],
        len(report["candidates"]),
        sum(c["gate"]["passed"] for c in report["candidates"]),
        ", ".join(f"{p.model}@{p.version} ({'/'.join(p.aliases)})" for p in promoted) or "nothing",
    )
    return report
