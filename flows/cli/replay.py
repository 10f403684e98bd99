"""``wxc replay``: the operational loop replayed over past data (a Prefect flow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOpt, SetOpt, app, err, load, out, stage_flows
from wxmodels.errors import ConfigError


@app.command()
def replay(
    config: ConfigOpt,
    start: Annotated[str, typer.Option(help="First tick: the first model sees data before it.")],
    end: Annotated[str, typer.Option(help="Last tick (included).")],
    ingest_every: Annotated[
        str, typer.Option(help="Ticks: ingest cadence (6H, 1D, 2W, 1M, 1Y).")
    ] = "1M",
    retrain_every: Annotated[str, typer.Option(help="Retrain cadence (first at start).")] = "1Y",
    set_: SetOpt = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Replay directory (default: <config workdir>/replay)."),
    ] = None,
    val: Annotated[str, typer.Option(help="Validation period before each tick's test.")] = "3M",
    test: Annotated[str, typer.Option(help="Test period before each tick.")] = "3M",
    revisions: Annotated[
        bool,
        typer.Option(
            "--revisions", help="Deliver each period first as preliminary data, then final."
        ),
    ] = False,
    revision_lag: Annotated[int, typer.Option(help="Ticks from preliminary to final.")] = 1,
    revision_noise: Annotated[
        float, typer.Option(help="Preliminary data's error, in each variable's std.")
    ] = 0.05,
    report: Annotated[Path | None, typer.Option(help="Write the markdown report here.")] = None,
) -> None:
    """Replay the loop from START to END: at each tick the source offers only what existed
    before it, the scheduled ingest runs, the deployed models are scored on the period that
    just arrived, and retrain / compress-validate-promote run where due. Resumable: run it
    again to continue after the last finished tick."""
    from pydantic import ValidationError

    from wxmodels.config.replay import ReplayConfig

    load(config, set_)  # a bad config is one line before anything starts
    rev = {"lag": revision_lag, "noise": revision_noise} if revisions else None
    try:
        ReplayConfig(
            start=start,
            end=end,
            ingest_every=ingest_every,
            retrain_every=retrain_every,
            split={"val": val, "test": test},
            revisions=rev,
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "replay"
        raise ConfigError(f"replay {where}: {first['msg']}") from None
    stage_flows()
    from flows.replay import replay as replay_flow
    from wxmodels.replay.records import Timeline
    from wxmodels.replay.report import markdown, summary

    path = replay_flow(
        str(config),
        start,
        end,
        ingest_every=ingest_every,
        retrain_every=retrain_every,
        overrides=list(set_ or []),
        workdir=str(workdir) if workdir else None,
        split={"val": val, "test": test},
        revisions=rev,
    )
    tl = Timeline.load(path)
    s = summary(tl)
    ev = s.get("edge_vs_teacher", {})
    out.print(f"replay of {tl.name}: {s['ticks']} ticks, timeline {path}")
    if "ingest_ratio_last_first" in s:
        out.print(f"  ingest per tick, last year / first year: {s['ingest_ratio_last_first']:.2f}")
    if ev.get("ticks"):
        out.print(
            f"  live edge within 2 % of the live teacher at every lead on "
            f"{ev['within_2pct_every_lead']}/{ev['ticks']} ticks (mean ratio {ev['mean']:.3f})"
        )
    out.print(f"  teachers refused by the gate: {len(s.get('refusals', []))}")
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(markdown(tl))
        err.print(f"report: {report}")
