"""The replay's timeline: one :class:`Tick` per simulated ingest, in ``timeline.json``."""

from __future__ import annotations

from typing import Any

from wxmodels.record import Record

__all__ = ["Arrival", "Delivered", "LiveScores", "Retrain", "StoreState", "Tick", "Timeline"]

Card = dict[str, dict[str, dict[str, dict[str, float | None]]]]
"""``{model: {metric: {variable: {lead_h: value}}}}``"""


class Delivered(Record):
    """What the archive offered at the tick (see :mod:`wxmodels.replay.archive`)."""

    files: int
    preliminary: int
    steps: int
    last: str | None = None
    """The latest step served (always before the tick)."""


class StoreState(Record):
    n_time: int
    start: str | None
    end: str | None
    bytes: int
    version: str | None


class Arrival(Record):
    """What a tick's delivery and ingest did (kept while the tick runs, so that a tick
    interrupted and run again reports its first run's arrival, not an empty second one)."""

    index: int
    delivered: Delivered
    appended: int
    revised: int
    wall_s: dict[str, float]


class LiveScores(Record):
    """The models deployers had over ``[since, until)``, scored there (out of sample: they
    were trained and chosen before ``since``), beside the baselines fitted as of ``since``."""

    since: str
    until: str
    n_inits: int
    models: dict[str, str]
    """``{label: registry version}`` of what was scored (``teacher``, ``edge``, ``hpc``, and
    ``<alias>-previous`` for the version an alias held before the last move)."""
    fit_end: str | None = None
    """The last step the baselines and the climatology were fitted on (< ``since``)."""
    scores: Card = {}


class Retrain(Record):
    """A retrain at the tick and what compress-validate-promote made of it."""

    teacher_id: str
    store_version: str
    train_window: tuple[str, str] | None = None
    train_inits: int | None = None
    train_wall_s: float
    cvp_wall_s: float
    teacher_promoted: bool
    refused: list[str] = []
    """Why the registry's teacher was kept (the gate's reasons), when it was."""
    promotions: list[dict[str, Any]] = []
    """``{version, cell, aliases, moved}`` of each published version."""
    gates: dict[str, list[str]] = {}
    """Failed candidates and the gate's reasons."""


class Tick(Record):
    index: int
    time: str
    period: tuple[str, str] | None = None
    """``[previous tick, this tick)``: the period that arrived and was scored."""
    delivered: Delivered
    store: StoreState
    appended: int
    revised: int
    wall_s: dict[str, float]
    """``deliver``, ``ingest``, ``score``, ``train``, ``cvp``, ``total``."""
    live: LiveScores | None = None
    retrain: Retrain | None = None
    aliases: dict[str, str] = {}
    """The registry's aliases after the tick (what deployers pulled until the next one)."""
    resumed: bool = False
    """The tick was interrupted and run again (its wall times are the second run's)."""


class Timeline(Record):
    name: str
    replay: dict[str, Any]
    """The replay's settings (:class:`~wxmodels.config.replay.ReplayConfig`)."""
    config: str
    overrides: list[str]
    ticks: list[Tick] = []
