"""Promotion task."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run

from tasks.common import (
    IO_RETRIES,
    IO_RETRY_DELAYS,
    retry_unless_user_error,
    use_credentials,
    use_signing_key,
)
from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline.promote import promote
from wxmodels.pipeline.records import Evaluation, Promotion
from wxmodels.registry.core import Registry

__all__ = ["REJECTED_ALL", "promote_task", "rejected_all"]

REJECTED_ALL = "wxc.gates.rejected-all"


@task(
    name="promote",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_user_error,
    timeout_seconds=3600,
)
def promote_task(config: CycleConfig, evaluation: Evaluation, teacher_dir: str) -> list[Promotion]:
    """Publish the teacher and the winners; one markdown artifact (the model card) each."""
    log = get_run_logger()
    use_credentials(config.promote.credentials_block)
    use_signing_key(config.promote.signing_key_block)
    run = f"{flow_run.get_flow_name() or ''}/{flow_run.get_name() or ''} ({flow_run.get_id()})"
    promoted = promote(config, evaluation, teacher_dir, run=run)
    reg = Registry.for_config(config.promote)
    for p in promoted:
        ref = f"{p.model}@{p.version}"
        log.info("promoted %s (%s) as %s", ref, p.cell, ", ".join(p.aliases))
        # pull it back: verifies every checksum of what deployers will get
        tmp = Path(reg.pull(ref, Path(config.workdir) / "pulled" / p.version))
        create_markdown_artifact(
            key=f"model-card-{p.aliases[0]}",
            markdown=(tmp / "card.md").read_text(),
            description=f"Model card of {ref} ({', '.join(p.aliases)})",
        )
    if not any(p.kind == "candidate" for p in promoted):
        log.warning("no candidate passed the gates; edge/hpc aliases unchanged")
        if evaluation.candidates:
            rejected_all(config, evaluation, run)
    return promoted


def rejected_all(config: CycleConfig, evaluation: Evaluation, run: str) -> None:
    """Tell operators that the gates rejected every candidate: an event (automations can act on
    it) and, when ``promote.notify_block`` names one, a notification."""
    reasons = {c.name: c.gate.reasons[:2] for c in evaluation.candidates}
    body = "\n".join(f"- {n}: {'; '.join(r)}" for n, r in reasons.items())
    emit_event(
        event=REJECTED_ALL,
        resource={"prefect.resource.id": f"wxc.model.{config.name}", "wxc.model": config.name},
        payload={"run": run, "reasons": reasons},
    )
    if config.promote.notify_block:
        from prefect.blocks.core import Block

        Block.load(config.promote.notify_block).notify(
            f"wxcompress {config.name}: the gates rejected all {len(reasons)} candidates "
            f"({run}); edge/hpc unchanged.\n{body}",
            subject=f"wxcompress {config.name}: no candidate passed",
        )
