"""Ingest task."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tasks.common import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_user_error, store_slot
from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import IngestReport, ingest

__all__ = ["ingest_task"]


@task(
    name="ingest",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_user_error,
    timeout_seconds=3600,
)
def ingest_task(data: DataConfig, dask_address: str | None = None) -> IngestReport:
    """Append what is new in the source to the store; returns the ingest report."""
    log = get_run_logger()
    with store_slot(data.store, data.lock_timeout_s):
        rep = ingest(data, dask_address=dask_address)
    log.info(
        "store %s: +%d steps, %d already present, now %s..%s (version %s)",
        rep.store,
        rep.appended,
        rep.skipped,
        rep.start,
        rep.end,
        rep.version,
    )
    for p in rep.problems:
        log.warning("left out %s: %s", p["path"], p["reason"])
    if rep.revised:
        log.warning("revised %d committed steps: %s", len(rep.revised), rep.revised[:5])
    if rep.gap:
        log.warning("%s", rep.gap)
    if rep.missing:
        log.warning("steps missing in the source (kept as missing): %s", rep.missing[:10])
    create_markdown_artifact(
        key="ingest-report",
        markdown=(
            f"### Ingest\n- store `{rep.store}` version `{rep.version}`\n"
            f"- read {rep.read} of {rep.inputs} inputs; appended {rep.appended} steps, "
            f"skipped {rep.skipped}, revised {len(rep.revised)}\n"
            + (f"- {rep.gap}\n" if rep.gap else "")
            + f"- range {rep.start} .. {rep.end}\n"
            + "".join(f"- left out `{p['path']}`: {p['reason']}\n" for p in rep.problems)
        ),
        description="What this ingest run appended",
    )
    return rep
