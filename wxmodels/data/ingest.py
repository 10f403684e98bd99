"""Ingest: source -> canonical -> validated -> appended to the store."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from wxmodels.config.data import DataConfig
from wxmodels.data.sources import Problem, open_source
from wxmodels.data.store import Store
from wxmodels.errors import IngestError

__all__ = ["IngestReport", "ingest"]

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What an ingest run did (JSON-able)."""

    store: str
    version: str
    appended: int
    skipped: int
    start: str | None
    end: str | None
    inputs: int
    problems: list[dict[str, str]] = field(default_factory=list)
    gap: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest(cfg: DataConfig) -> IngestReport:
    """Append what is new in ``cfg.source`` to ``cfg.store``.

    Inputs that fail to open or validate are left out and listed in ``problems``; the store is
    not touched by them. Raises :class:`IngestError` when no input is usable.
    """
    res = open_source(
        cfg.source,
        variables=cfg.variables,
        max_nan_fraction=cfg.max_nan_fraction,
        time_chunk=cfg.time_chunk,
    )
    problems = [asdict(p) for p in res.problems]
    if res.dataset is None:
        first: Problem = res.problems[0]
        raise IngestError(
            f"no usable input among {len(res.inputs)} file(s); first problem: "
            f"{first.path}: {first.reason}"
        )
    store = Store(cfg.store, cfg.storage_options)
    rep = store.append(res.dataset, time_chunk=cfg.time_chunk, source=cfg.source.kind)
    log.info(
        "ingest %s: +%d steps (%d already present), %s..%s, version %s",
        store.url,
        rep.appended,
        rep.skipped,
        rep.start,
        rep.end,
        rep.version,
    )
    return IngestReport(
        store.url,
        rep.version,
        rep.appended,
        rep.skipped,
        rep.start,
        rep.end,
        len(res.inputs),
        problems,
    )
