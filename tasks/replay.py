"""Replay tasks: the archive's delivery at a tick, and live scoring of what was deployed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task

from wxmodels.config.cycle import CycleConfig
from wxmodels.config.data import SplitConfig
from wxmodels.config.replay import ReplayConfig, parse_period
from wxmodels.pipeline.champion import pull_cached
from wxmodels.replay.archive import Archive
from wxmodels.replay.live import score_period
from wxmodels.replay.records import Delivered, LiveScores

__all__ = ["deliver_task", "live_score_task"]


@task(name="deliver", task_run_name="deliver-{tick}")
def deliver_task(files: list[str], landing: str, rp: ReplayConfig, tick: str) -> Delivered:
    """Write what the archive holds before ``tick`` into the landing directory."""
    a = Archive(files, landing, pd.Timestamp(rp.start), parse_period(rp.ingest_every), rp.revisions)
    d = a.deliver(pd.Timestamp(tick))
    return Delivered(files=len(d.files), preliminary=len(d.preliminary), steps=d.steps, last=d.last)


@task(name="live-score", task_run_name="live-score-{until}")
def live_score_task(
    config: CycleConfig, since: str, until: str, models: dict[str, str], split: SplitConfig
) -> LiveScores:
    """Score the registry versions ``models`` (``{label: version}``, pulled and verified) on
    ``[since, until)`` beside the baselines fitted on what existed before ``since``."""
    paths = {
        label: (v, str(Path(pull_cached(config, f"{config.name}@{v}")) / "model.onnx"))
        for label, v in models.items()
    }
    return score_period(config, since, until, paths, split)
