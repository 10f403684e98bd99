"""The deployments of the operational pipeline, built from ``configs/deployments.yaml``.

``python -m deployments`` (what ``wxc up`` starts) registers them with the Prefect server and
runs their flow runs as local processes (a Prefect runner); ``prefect deployment ls`` lists
them. The same flows run unchanged from a work pool (``prefect deploy`` with these entrypoints)
on Kubernetes or a Dask cluster (``runtime.dask_address``).
"""

from __future__ import annotations

from typing import Any

from prefect.events import DeploymentEventTrigger

from flows.scheduled import TEACHER_TRAINED, compress_validate_promote, retrain, scheduled_ingest
from wxmodels.config.deployments import DEPLOYMENT_NAMES, DeploymentsConfig

__all__ = ["NAMES", "build"]

NAMES = DEPLOYMENT_NAMES


def _schedule(cron: str | None, tz: str) -> dict[str, Any]:
    if cron is None:
        return {}
    from prefect.client.schemas.schedules import CronSchedule

    return {"schedules": [CronSchedule(cron=cron, timezone=tz)]}


def build(d: DeploymentsConfig) -> list:
    """The three deployments (``RunnerDeployment``), with schedules, limits, tags, trigger."""
    params = {"config": d.config, "overrides": d.overrides}
    return [
        scheduled_ingest.to_deployment(
            name="wxc-ingest",
            parameters=params,
            tags=[*d.tags, "ingest"],
            description="Append new reanalysis data to the store (idempotent).",
            concurrency_limit=1,
            **_schedule(d.ingest_cron, d.timezone),
        ),
        retrain.to_deployment(
            name="wxc-retrain",
            parameters=params,
            tags=[*d.tags, "retrain"],
            description=f"Retrain the teacher; a new one emits {TEACHER_TRAINED}.",
            concurrency_limit=d.retrain_concurrency,
            **_schedule(d.retrain_cron, d.timezone),
        ),
        compress_validate_promote.to_deployment(
            name="wxc-compress-validate-promote",
            parameters=params,
            tags=[*d.tags, "compress"],
            description="Compression matrix, validation and promotion of a new teacher.",
            concurrency_limit=d.compress_concurrency,
            triggers=[
                DeploymentEventTrigger(
                    name="on new teacher",
                    expect={TEACHER_TRAINED},
                    parameters={
                        "config": "{{ event.payload.config }}",
                        "teacher_dir": "{{ event.payload.teacher_dir }}",
                        "overrides": {
                            "template": "{{ event.payload.overrides | tojson }}",
                            "__prefect_kind": "json",
                        },
                    },
                )
            ],
        ),
    ]
