"""The flows that deployments run: parameters are a config path and overrides (JSON-friendly,
shown in the Prefect UI), never config objects.

``retrain`` emits ``wxc.teacher.trained`` when the teacher it trained is not the registry's
current one; the ``compress-validate-promote`` deployment is triggered by that event.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.events import emit_event

from flows.runners import dask_runner, local_cluster
from flows.stages import compress_flow, evaluate_flow, ingest_flow, promote_flow, train_flow
from wxmodels.config import load_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.data.ingest import IngestReport
from wxmodels.pipeline import champion
from wxmodels.pipeline.records import Promotion, TeacherRecord

__all__ = [
    "TEACHER_TRAINED",
    "compress_validate_promote",
    "is_new",
    "retrain",
    "scheduled_ingest",
]

TEACHER_TRAINED = "wxc.teacher.trained"


@flow(name="scheduled-ingest", flow_run_name="ingest-{config}")
def scheduled_ingest(config: str, overrides: list[str] | None = None) -> IngestReport:
    """Append what is new to the store (idempotent: a run with nothing new changes nothing)."""
    return ingest_flow(load_config(config, overrides))


@flow(name="retrain", flow_run_name="retrain-{config}")
def retrain(
    config: str, overrides: list[str] | None = None, announce: bool = True
) -> TeacherRecord:
    """Train the teacher on the store's current version (warm start per ``train.init``); when
    it is new to the registry, announce it so that the compression deployment picks it up
    (``announce=False``: the caller runs compress-validate-promote itself, as a replay does,
    see :func:`is_new`)."""
    log = get_run_logger()
    cfg = load_config(config, overrides)
    rec = train_flow(cfg)
    if not is_new(cfg, rec):
        log.info("teacher %s is already the registry's: nothing to announce", rec.id)
        return rec
    if not announce:
        return rec
    emit_event(
        event=TEACHER_TRAINED,
        resource={"prefect.resource.id": f"wxc.teacher.{rec.id}", "wxc.model": cfg.name},
        payload={"teacher_dir": rec.dir, "config": config, "overrides": list(overrides or [])},
    )
    log.info("teacher %s announced (%s)", rec.id, TEACHER_TRAINED)
    return rec


def is_new(cfg: CycleConfig, rec: TeacherRecord) -> bool:
    """Whether ``rec`` is not the registry's current teacher (so compress-validate-promote
    has work to do)."""
    inc = champion.incumbent(cfg)
    return inc is None or inc.teacher_id != rec.id


@flow(name="compress-validate-promote", flow_run_name="cvp-{config}")
def compress_validate_promote(
    config: str, teacher_dir: str, overrides: list[str] | None = None
) -> list[Promotion]:
    """The matrix, validation and promotion for the teacher in ``teacher_dir``."""
    cfg = load_config(config, overrides)
    teacher = TeacherRecord.load(f"{teacher_dir}/teacher.json")
    with local_cluster(cfg.runtime) as address:
        matrix = compress_flow.with_options(task_runner=dask_runner(cfg.runtime, address))(
            cfg, teacher_dir
        )
        evaluation = evaluate_flow.with_options(task_runner=dask_runner(cfg.runtime, address))(
            cfg, teacher, matrix
        )
    return promote_flow(cfg, evaluation, teacher_dir)
