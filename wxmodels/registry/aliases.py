"""Alias events: an append-only log per alias, ordered by the registry, not by clocks.

Each move of an alias is one object ``<name>/aliases/<alias>/<seq>.json`` whose sequence number
is the next after the newest event, taken under the alias's lock (a file lock locally, a lease
on object storage: see :mod:`wxmodels.locks`) and created exclusively, so two promotions never
share a number and the newest event is the one with the highest number, whatever the writers'
clocks say. The ``at`` time is recorded for people, never used for ordering. Events written
before sequence numbers existed (``<time>-<uuid>.json``) come first, in their own order.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AliasEvent", "event_name", "order"]

_SEQ = re.compile(r"^(\d{12})\.json$")


@dataclass
class AliasEvent:
    """One move of an alias: who pointed it where, when, why, from which run.

    ``seq`` is its place in the alias's history (``None`` for events written before the
    registry numbered them)."""

    alias: str
    version: str
    at: str
    by: str
    reason: str = ""
    run: str = ""
    previous: str | None = None
    event: str = ""
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def event_name(seq: int) -> str:
    return f"{seq:012d}.json"


def seq_of(path: str) -> int | None:
    m = _SEQ.match(path.rstrip("/").rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def order(events: list[AliasEvent]) -> list[AliasEvent]:
    """Oldest first: unnumbered (older) events by their own time, then numbered ones."""
    legacy = sorted((e for e in events if e.seq is None), key=lambda e: (e.at, e.event))
    numbered = sorted((e for e in events if e.seq is not None), key=lambda e: e.seq or 0)
    return legacy + numbered
