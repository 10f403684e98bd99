"""A replay of the operational loop over past data: ticks, cadences, the trailing split and the
revision scenario (``wxc replay``)."""

from __future__ import annotations

import re

import pandas as pd
from pydantic import Field, field_validator, model_validator

from wxmodels.config.base import Strict

__all__ = ["ReplayConfig", "ReplaySplit", "RevisionScenario", "parse_period"]

_PERIOD = re.compile(r"^\s*(\d+)\s*([hdwmy])\s*$", re.IGNORECASE)
_UNITS = {"h": "hours", "d": "days", "w": "weeks", "m": "months", "y": "years"}


def parse_period(text: str) -> pd.DateOffset:
    """``"1M"`` (a month), ``"1Y"``, ``"7D"``, ``"2W"``, ``"6H"`` -> a calendar offset."""
    m = _PERIOD.match(str(text))
    if m is None or int(m.group(1)) == 0:
        raise ValueError(
            f"{text!r} is not a period: use a positive count and a unit, e.g. 6H, 1D, 2W, 1M, 1Y"
        )
    return pd.DateOffset(**{_UNITS[m.group(2).lower()]: int(m.group(1))})


def _period(v: str) -> str:
    parse_period(v)
    return v.strip().upper()


class ReplaySplit(Strict):
    """The cycle's time split as of each tick: the last ``test`` before the tick is the test
    window, the ``val`` before it validation, everything earlier training."""

    val: str = "3M"
    test: str = "3M"

    _check = field_validator("val", "test")(_period)


class RevisionScenario(Strict):
    """Deliver each period first as preliminary data (the final values plus noise, as ERA5T
    can differ from ERA5) and ``lag`` ticks later as final; the store applies the revision."""

    lag: int = Field(1, ge=1, le=36)
    """Ticks between a period's preliminary and its final delivery."""
    noise: float = Field(0.05, gt=0, le=5)
    """Std of the preliminary data's error, in each variable's std over the period."""
    seed: int = 0


class ReplayConfig(Strict):
    """Simulated time: ticks every ``ingest_every`` from ``start`` to ``end`` (both included).

    At each tick the source offers the data valid before the tick, the scheduled ingest runs,
    the models live since the previous tick are scored on the period that just arrived, and
    where a retrain is due (at the first tick and every ``retrain_every``, not at the last)
    the retrain and compress-validate-promote flows run.
    """

    start: str
    end: str
    ingest_every: str = "1M"
    retrain_every: str = "1Y"
    split: ReplaySplit = ReplaySplit()
    revisions: RevisionScenario | None = None
    workdir: str | None = None
    """Where the replay keeps its landing directory, store, registry and timeline (default:
    ``<config workdir>/replay``)."""

    _check = field_validator("ingest_every", "retrain_every")(_period)

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        try:
            return str(pd.Timestamp(v))
        except (ValueError, TypeError):
            raise ValueError(f"{v!r} is not a date/time") from None

    @model_validator(mode="after")
    def _order(self) -> ReplayConfig:
        if pd.Timestamp(self.end) <= pd.Timestamp(self.start):
            raise ValueError("end must come after start")
        if len(self.ticks()) > 5000:
            raise ValueError("more than 5000 ticks: use a longer ingest_every")
        return self

    def ticks(self) -> list[pd.Timestamp]:
        """The tick times, ``start + k * ingest_every`` up to ``end``."""
        t0, t1, every = (
            pd.Timestamp(self.start),
            pd.Timestamp(self.end),
            parse_period(self.ingest_every),
        )
        out = []
        k = 0
        while (t := t0 + k * every) <= t1 and k <= 5000:
            out.append(t)
            k += 1
        return out

    def retrain_ticks(self) -> list[int]:
        """Indices of the ticks that retrain: the first, then each tick at or past the next
        ``start + n * retrain_every``; never the last (it has no future to serve)."""
        ticks = self.ticks()
        every, t0 = parse_period(self.retrain_every), pd.Timestamp(self.start)
        out, n = [], 0
        for k, t in enumerate(ticks[:-1]):
            if t >= t0 + n * every:
                out.append(k)
                while t >= t0 + n * every:
                    n += 1
        return out
