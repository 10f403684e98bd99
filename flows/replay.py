"""``replay``: the operational loop over past data, tick by tick, through the same flows the
deployments run (scheduled ingest, retrain, compress-validate-promote).

At each tick the archive offers what existed before the tick (:mod:`wxmodels.replay.archive`),
the scheduled-ingest flow appends it, the versions deployers had since the previous tick are
scored on the period that just arrived (out of sample), and where a retrain is due the
retrain flow runs and, for a teacher new to the registry, compress-validate-promote (what the
``wxc.teacher.trained`` trigger starts in production). Each tick is appended to
``<replay dir>/timeline.json``; a replay started again continues after the last tick there.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.scheduled import compress_validate_promote, is_new, retrain, scheduled_ingest
from flows.state import load_latest
from tasks.replay import deliver_task, live_score_task
from wxmodels.config import load_config
from wxmodels.config.replay import ReplayConfig
from wxmodels.faults import crash_point
from wxmodels.pipeline.records import Evaluation
from wxmodels.replay import plan
from wxmodels.replay.records import Arrival, LiveScores, Tick, Timeline
from wxmodels.replay.report import markdown, relative_rmse, timeline_rows

__all__ = ["replay"]


def _live_models(done: list[Tick]) -> dict[str, str]:
    """``{label: version}``: the aliases as they stood after the last tick, and the version an
    alias held before, where that tick moved it (so each move is judged out of sample)."""
    if not done:
        return {}
    now = {a: v for a, v in done[-1].aliases.items() if a in plan.LIVE_ALIASES}
    before = done[-2].aliases if len(done) > 1 else {}
    prev = {f"{a}-previous": before[a] for a in now if before.get(a) not in (None, now[a])}
    return {**now, **prev}


@flow(name="replay", flow_run_name="replay-{config}")
def replay(
    config: str,
    start: str,
    end: str,
    ingest_every: str = "1M",
    retrain_every: str = "1Y",
    overrides: list[str] | None = None,
    workdir: str | None = None,
    split: dict[str, str] | None = None,
    revisions: dict[str, Any] | None = None,
) -> str:
    """Replay ``config`` from ``start`` to ``end``; returns the timeline's path.

    ``split``: ``{val, test}`` periods before each tick (default 3 months each);
    ``revisions``: ``{lag, noise, seed}`` to deliver each period first as preliminary data.
    """
    log = get_run_logger()
    overrides = list(overrides or [])
    rp = ReplayConfig(
        start=start,
        end=end,
        ingest_every=ingest_every,
        retrain_every=retrain_every,
        workdir=workdir,
        **({"split": split} if split else {}),
        **({"revisions": revisions} if revisions is not None else {}),
    )
    cfg0 = load_config(config, overrides)
    rdir = plan.replay_dir(cfg0, rp)
    files = plan.source_files(cfg0)
    base = [*overrides, *plan.landing_overrides(cfg0, rdir, files)]
    path = rdir / "timeline.json"
    tl = plan.load_timeline(
        path,
        Timeline(
            name=cfg0.name,
            replay=rp.model_dump(mode="json"),
            config=config,
            overrides=overrides,
        ),
    )
    ticks, retrain_at = rp.ticks(), set(rp.retrain_ticks())
    if tl.ticks:
        log.info("resuming the replay at tick %d of %d (%s)", len(tl.ticks), len(ticks), rdir)
    progress = create_progress_artifact(
        100.0 * len(tl.ticks) / len(ticks),
        key=f"replay-{cfg0.name}-progress",
        description=f"replay of {cfg0.name}: ticks done",
    )
    for k in range(len(tl.ticks), len(ticks)):
        tick = _tick(config, cfg0.name, rp, k, ticks, k in retrain_at, files, rdir, base, tl)
        tl = tl.model_copy(update={"ticks": [*tl.ticks, tick]})
        tl.write(path)
        update_progress_artifact(progress, 100.0 * (k + 1) / len(ticks))
        crash_point(f"replay:after-tick:{k}")
    create_table_artifact(
        key=f"replay-{cfg0.name}",
        table=timeline_rows(tl),
        description=f"replay of {cfg0.name}, {rp.start} .. {rp.end}: one row per tick",
    )
    create_markdown_artifact(
        key=f"replay-{cfg0.name}-report",
        markdown=markdown(tl),
        description=f"replay of {cfg0.name}: targets and promotions",
    )
    log.info("replay done: %d ticks, timeline %s", len(tl.ticks), path)
    return str(path)


def _tick(
    config: str,
    name: str,
    rp: ReplayConfig,
    k: int,
    ticks: list[pd.Timestamp],
    retrain_due: bool,
    files: list[str],
    rdir: Path,
    base: list[str],
    tl: Timeline,
) -> Tick:
    log = get_run_logger()
    t_tick = ticks[k]
    ov = plan.tick_overrides(base, rp, t_tick)
    cfg = load_config(config, ov)
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    delivered = deliver_task(files, str(rdir / "landing"), rp, str(t_tick))
    wall["deliver"] = time.perf_counter() - t0
    t = time.perf_counter()
    ingested = scheduled_ingest(config, ov)
    wall["ingest"] = time.perf_counter() - t
    # a tick interrupted after its ingest is run again from the start (delivery and ingest
    # are idempotent); what they did the first time is what the timeline keeps
    partial = rdir / "tick.partial.json"
    first = Arrival(
        index=k,
        delivered=delivered,
        appended=ingested.appended,
        revised=len(ingested.revised),
        wall_s={"deliver": wall["deliver"], "ingest": wall["ingest"]},
    )
    resumed = partial.exists() and Arrival.load(partial).index == k
    if resumed:
        first = Arrival.load(partial)
    else:
        first.write(partial)
    crash_point(f"replay:after-ingest:{k}")
    live = None
    models = _live_models(tl.ticks)
    if k > 0 and models:
        t = time.perf_counter()
        val, test = plan.split_as_of(rp, ticks[k - 1])
        live = live_score_task(
            cfg,
            str(ticks[k - 1]),
            str(t_tick),
            models,
            cfg.data.split.model_copy(update={"val_start": val, "test_start": test}),
        )
        wall["score"] = time.perf_counter() - t
    rt = None
    if retrain_due:
        t = time.perf_counter()
        teacher = retrain(config, ov, announce=False)
        wall["train"] = time.perf_counter() - t
        crash_point(f"replay:after-train:{k}")
        promoted = evaluation = None
        if is_new(cfg, teacher):
            t = time.perf_counter()
            promoted = compress_validate_promote(config, teacher.dir, ov)
            wall["cvp"] = time.perf_counter() - t
            evaluation = load_latest(cfg, "evaluate", Evaluation, "replay")
        rt = plan.retrain_record(
            cfg, teacher, wall["train"], wall.get("cvp", 0.0), promoted, evaluation
        )
    wall["total"] = time.perf_counter() - t0
    tick = Tick(
        index=k,
        time=str(t_tick),
        period=(str(ticks[k - 1]), str(t_tick)) if k > 0 else None,
        delivered=first.delivered,
        store=plan.store_state(cfg),
        appended=first.appended,
        revised=first.revised,
        wall_s={a: round(b, 3) for a, b in {**wall, **first.wall_s}.items()},
        resumed=resumed,
        live=live,
        retrain=rt,
        aliases=plan.aliases(cfg),
    )
    log.info(
        "tick %d/%d %s: +%d steps (%d revised), store %d steps%s%s, %.0f s",
        k + 1,
        len(ticks),
        t_tick,
        tick.appended,
        tick.revised,
        tick.store.n_time,
        _live_line(live),
        ""
        if rt is None
        else f", retrained {rt.teacher_id}"
        + (" (refused: " + "; ".join(rt.refused) + ")" if rt.refused else ""),
        wall["total"],
    )
    return tick


def _live_line(live: LiveScores | None) -> str:
    """``, live RMSE/climatology teacher 0.61 / edge 0.62 / ridge 0.66``"""
    if live is None or not live.n_inits:
        return ""
    parts = [
        f"{m} {r:.3f}"
        for m in ("teacher", "edge", "ridge")
        if (r := relative_rmse(live, m)) is not None
    ]
    return ", live RMSE/climatology " + " / ".join(parts) if parts else ""
