"""The stage commands: ingest, train, compress, evaluate, promote, run (Prefect flows)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOpt, DaskOpt, SetOpt, app, err, load, out, stage_flows
from flows.cli.present import print_candidates, print_report, print_verdict
from wxmodels.pipeline.records import Evaluation, MatrixResult, TeacherRecord

WarmOpt = Annotated[
    str | None,
    typer.Option(
        help="Teacher directory, or NAME@ALIAS / NAME@VERSION in the registry, to start from "
        "(default: the registry's current teacher when the store has moved)."
    ),
]
ScratchOpt = Annotated[
    bool, typer.Option("--from-scratch", help="Train the teacher from random weights.")
]


@app.command()
def ingest(config: ConfigOpt, set_: SetOpt = None) -> None:
    """Append what is new in the configured source to the store."""
    cfg = load(config, set_)
    stages, _ = stage_flows()
    rep = stages.ingest_flow(cfg)
    out.print(
        f"store {rep.store}: read {rep.read} of {rep.inputs} inputs, "
        f"+{rep.appended} steps ({rep.skipped} already present, "
        f"{len(rep.revised)} revised), {rep.start} .. {rep.end}, version {rep.version}"
    )
    for path, f in list(rep.files.items())[:20]:
        how = ", ".join(f"{v} {m}" for v, m in f.get("regridded", {}).items())
        out.print(
            f"  {Path(path).name}: {', '.join(f.get('canonical', []))} from {f.get('grid', '?')}"
            + (f", regridded ({how})" if how else "")
        )
    if rep.gap:
        err.print(f"[yellow]{rep.gap}[/]")
    if rep.missing:
        err.print(f"[yellow]missing in the source (kept missing)[/]: {', '.join(rep.missing[:8])}")
    for p in rep.problems:
        err.print(f"[yellow]left out[/] {p['path']}: {p['reason']}")


@app.command()
def train(
    config: ConfigOpt,
    set_: SetOpt = None,
    warm_start: WarmOpt = None,
    from_scratch: ScratchOpt = False,
) -> None:
    """Train (or reuse) the teacher on the store's current version.

    By default it warm-starts from the registry's current teacher when the store has moved
    since that one was trained (``train.init``)."""
    cfg = load(config, [*(set_ or []), *(["train.init=scratch"] if from_scratch else [])])
    ws = _resolve_warm_start(cfg, warm_start)
    stages, _ = stage_flows()
    rec = stages.train_flow(cfg, ws)
    out.print(
        f"teacher {rec.id}: {rec.params} params, best validation loss "
        f"{rec.best_val:.4f} ({rec.dir})"
    )


def _resolve_warm_start(cfg, warm_start: str | None) -> str | None:
    """A directory as given; a registry reference pulled (verified) under the workdir."""
    if not warm_start or "@" not in warm_start or Path(warm_start).exists():
        return warm_start
    from wxmodels.pipeline.champion import pull_cached

    return str(pull_cached(cfg, warm_start))


@app.command()
def compress(config: ConfigOpt, set_: SetOpt = None, dask_address: DaskOpt = None) -> None:
    """Build the compression matrix from the latest teacher (cells in parallel on Dask)."""
    from flows.runners import dask_runner
    from flows.state import load_latest

    cfg = load(config, set_, dask_address)
    teacher = load_latest(cfg, "train", TeacherRecord, "compress")
    stages, _ = stage_flows()
    with _cluster(cfg) as address:
        res = stages.compress_flow.with_options(task_runner=dask_runner(cfg.runtime, address))(
            cfg, teacher.dir
        )
    for c in res.cells:
        out.print(f"{c.name:24s} {c.label:28s} {c.pack_bytes:>10d} bytes packed")
    for n, e in res.failures.items():
        err.print(f"[red]{n} failed[/]: {e}")


@app.command()
def evaluate(config: ConfigOpt, set_: SetOpt = None, dask_address: DaskOpt = None) -> None:
    """Score the teacher, the candidates and the baselines; apply the gates."""
    from flows.runners import dask_runner
    from flows.state import load_latest

    cfg = load(config, set_, dask_address)
    teacher = load_latest(cfg, "train", TeacherRecord, "evaluate")
    matrix = load_latest(cfg, "compress", MatrixResult, "evaluate")
    stages, _ = stage_flows()
    with _cluster(cfg) as address:
        ev = stages.evaluate_flow.with_options(task_runner=dask_runner(cfg.runtime, address))(
            cfg, teacher, matrix
        )
    print_candidates(ev)
    print_verdict(ev.incumbent)


@contextlib.contextmanager
def _cluster(cfg) -> Iterator[str | None]:
    """The SLURM workers of ``runtime.cluster: slurm`` for the block (a configured address
    wins); ``None`` otherwise: the task runner joins that address or starts a LocalCluster."""
    from flows.runners import run_cluster

    rt = cfg.runtime
    if rt.cluster != "slurm" or rt.dask_address or os.environ.get("WXC_DASK_ADDRESS"):
        yield None
        return
    with run_cluster(rt) as address:
        yield address


@app.command()
def promote(config: ConfigOpt, set_: SetOpt = None) -> None:
    """Publish the teacher and the winners of the latest evaluation to the registry."""
    from flows.state import load_latest

    cfg = load(config, set_)
    teacher = load_latest(cfg, "train", TeacherRecord, "promote")
    ev = load_latest(cfg, "evaluate", Evaluation, "promote")
    stages, _ = stage_flows()
    print_verdict(ev.incumbent)
    for p in stages.promote_flow(cfg, ev, teacher.dir):
        out.print(f"{p.model}@{p.version} ({p.cell}): {', '.join(p.aliases)}")


@app.command()
def run(
    config: ConfigOpt,
    set_: SetOpt = None,
    dask_address: DaskOpt = None,
    report: Annotated[Path | None, typer.Option(help="Write the cycle report (JSON).")] = None,
    warm_start: WarmOpt = None,
    from_scratch: ScratchOpt = False,
) -> None:
    """Run the whole cycle: ingest, train, compress, evaluate, promote."""
    sets = [*(set_ or []), *(["train.init=scratch"] if from_scratch else [])]
    cfg = load(config, sets, dask_address)
    ws = _resolve_warm_start(cfg, warm_start)
    _, cycle = stage_flows()
    rep = cycle.cycle_flow(cfg, ws)
    if report:
        from wxmodels.utils import write_json_atomic

        write_json_atomic(report, rep)
    print_report(rep)
    if report:
        out.print(f"report: {report}")
