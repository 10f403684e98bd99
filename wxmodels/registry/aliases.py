"""Alias events: an append-only log per alias, ordered by the registry, not by clocks.

Each move of an alias is one object ``<name>/aliases/<alias>/<seq>.json`` whose sequence number
is the next after the newest event, taken under the alias's lock (a file lock locally, a lease
on object storage: see :mod:`wxmodels.locks`) and created exclusively, so two promotions never
share a number and the newest event is the one with the highest number, whatever the writers'
clocks say. The ``at`` time is recorded for people, never used for ordering. Events written
before sequence numbers existed (``<time>-<uuid>.json``) come first, in their own order.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from wxmodels.errors import RegistryError
from wxmodels.registry.names import validate_name

__all__ = ["AliasEvent", "AliasLog", "event_name", "order"]

log = logging.getLogger(__name__)

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


class AliasLog:
    """The alias half of :class:`~wxmodels.registry.core.Registry` (a mixin)."""

    # -- aliases -----------------------------------------------------------------------
    def _alias_dir(self, name: str, alias: str) -> str:
        return self._p(validate_name(name, "model name"), "aliases", validate_name(alias, "alias"))

    def history(self, name: str, alias: str) -> list[AliasEvent]:
        """All events of ``alias``, oldest first (in the registry's order, see
        :mod:`wxmodels.registry.aliases`)."""
        d = self._alias_dir(name, alias)
        if not self._exists(d):
            return []
        events = []
        for p in self.fs.ls(d, detail=False):
            if p.endswith(".json"):
                try:
                    ev = AliasEvent(**self._read_json(p))
                except (json.JSONDecodeError, TypeError) as e:
                    log.warning("ignoring unreadable alias event %s: %s", p, e)
                    continue
                ev.seq = seq_of(p)  # the object's name, not its body, gives the order
                events.append(ev)
        return order(events)

    def resolve_alias(self, name: str, alias: str) -> str | None:
        h = self.history(name, alias)
        return h[-1].version if h else None

    def set_alias(
        self, name: str, alias: str, version: str, *, reason: str = "", run: str = ""
    ) -> AliasEvent:
        """Point ``alias`` at an existing ``version`` by appending the next numbered event."""
        if not self.has_version(name, version):
            raise RegistryError(f"{name}@{version} does not exist (or has no manifest)")
        validate_name(alias, "alias")
        with self._writing("aliases", name, alias):
            h = self.history(name, alias)
            seq = max((e.seq for e in h if e.seq is not None), default=len(h)) + 1
            ev = AliasEvent(
                alias=alias,
                version=version,
                at=self._clock().isoformat(timespec="microseconds"),
                by=self._whoami(),
                reason=reason,
                run=run,
                previous=h[-1].version if h else None,
                event=f"{seq:012d}",
                seq=seq,
            )
            path = f"{self._alias_dir(name, alias)}/{event_name(seq)}"
            if self._exists(path):  # only a writer that ignored the lock gets here
                raise RegistryError(f"{name}@{alias}: event {seq} exists already; try again")
            self._put_bytes(path, json.dumps(ev.to_dict(), indent=1).encode())
        return ev

    def rollback(
        self, name: str, alias: str, *, reason: str = "rollback", run: str = ""
    ) -> AliasEvent:
        """Move ``alias`` back to the version it pointed at before its current one. Under the
        alias's lock, so that it either takes effect or fails; checked by reading it back."""
        with self._writing("aliases", name, alias):
            h = self.history(name, alias)
            if not h:
                raise RegistryError(f"{name}@{alias} has no history")
            current = h[-1].version
            previous = next((e.version for e in reversed(h) if e.version != current), None)
            if previous is None:
                raise RegistryError(f"{name}@{alias} has never pointed at another version")
            ev = self.set_alias(name, alias, previous, reason=reason, run=run)
            now = self.resolve_alias(name, alias)
        if now != previous:
            raise RegistryError(
                f"{name}@{alias}: the rollback to {previous} did not take effect (now {now})"
            )
        return ev

    def aliases(self, name: str) -> dict[str, str]:
        d = self._p(validate_name(name, "model name"), "aliases")
        if not self._exists(d):
            return {}
        out = {}
        for p in sorted(self.fs.ls(d, detail=False)):
            alias = p.rstrip("/").rsplit("/", 1)[-1]
            v = self.resolve_alias(name, alias)
            if v:
                out[alias] = v
        return out
