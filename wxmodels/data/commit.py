"""The store's commit record: what readers may see, and everything that travels with it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from wxmodels.data.stats import Moments

__all__ = ["COMMIT_VERSION", "Commit"]

COMMIT_VERSION = 2


@dataclass
class Commit:
    """What the store holds, as last committed.

    Attributes:
        n_time: committed time steps (readers see ``time[:n_time]``).
        start, end: first and last committed time (ISO 8601).
        step_hours: time step.
        variables: ``{name: units}``, in store order.
        grid: hash of the lat/lon coordinates; shape: ``[n_lat, n_lon]``.
        sequence: commit counter.
        history: one entry per commit (appended / revised steps, gaps, source, time).
        inputs: ledger of ingested inputs ``{id: {fingerprint, range, at}}``: unchanged inputs
            are not read again.
        quarantine: inputs left out ``{id: {fingerprint, reason, at}}``.
        moments: running sums for normalisation (:class:`~wxmodels.data.stats.Moments`).
        stats_group: where the climatology accumulators of this commit live.
        revision: an in-flight revision (intent log), or ``None``.
        hash: how the steps' content hashes are computed
            (:func:`~wxmodels.data.writepass.step_hashes`): ``"crc32c"`` for stores created
            now, ``"crc32"`` (the default of a record that does not say) for older ones.
    """

    n_time: int
    start: str
    end: str
    step_hours: float
    variables: dict[str, str]
    grid: str
    shape: list[int]
    sequence: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    quarantine: dict[str, dict[str, Any]] = field(default_factory=dict)
    moments: dict[str, list[float]] = field(default_factory=dict)
    stats_group: str | None = None
    revision: dict[str, Any] | None = None
    hash: str = "crc32"

    @property
    def version(self) -> str:
        """Content identifier of the committed store: time range, schema, grid and revisions."""
        body = {
            "range": [self.start, self.end, self.n_time, self.step_hours],
            "variables": self.variables,
            "grid": self.grid,
            "revisions": sum(len(h.get("revised", [])) for h in self.history),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def times(self) -> pd.DatetimeIndex:
        return pd.date_range(
            self.start, periods=self.n_time, freq=pd.Timedelta(hours=self.step_hours)
        )

    def get_moments(self) -> Moments:
        return Moments(**self.moments) if self.moments else Moments.empty(len(self.variables))

    def to_json(self) -> dict[str, Any]:
        return {"_type": "Commit", "_version": COMMIT_VERSION, "_data": asdict(self)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Commit:
        if obj.get("_type") != "Commit" or obj.get("_version") != COMMIT_VERSION:
            raise ValueError(f"unknown commit record {obj.get('_type')} v{obj.get('_version')}")
        return cls(**obj["_data"])
