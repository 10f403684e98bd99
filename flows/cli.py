"""``wxc``: the command line of wxcompress.

Stage commands run as Prefect flows against the local stack (started on demand) or the server
in ``PREFECT_API_URL``. Registry and predict commands need no server.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from wxmodels.errors import WxcError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="wxcompress: keep compressed weather-forecast models fresh.",
)
registry_app = typer.Typer(no_args_is_help=True, help="Browse, pull and roll back models.")
app.add_typer(registry_app, name="registry")
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config under configs/.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config field: key.path=value (repeatable)."),
]
DaskOpt = Annotated[
    str | None,
    typer.Option("--dask-address", help="Join an existing Dask scheduler (tcp://host:8786)."),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry", help="Registry URL (default: $WXC_REGISTRY, the config's, or .wxc/registry)."
    ),
]
TrustOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--trusted-key",
        help="Public key (PEM) or directory of keys a pulled version must be signed with "
        "(repeatable; also $WXC_TRUSTED_KEYS). Unsigned or foreign versions are refused.",
    ),
]


# -- environment -------------------------------------------------------------------------
def _setup_env() -> None:
    """Defaults that must be in place before prefect is imported."""
    from infra.stack import prefect_env

    for k, v in prefect_env({}).items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # an interrupted run's worker processes leave semaphores the tracker then reports
    os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")


def _ensure_api() -> str:
    """Use ``PREFECT_API_URL``, else the local stack (started if it is not running)."""
    from infra import stack

    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    st = stack.status()
    if not st["healthy"]:
        err.print("[dim]starting the local Prefect server (stop it with `wxc down`)...[/]")
        st = stack.up()
    os.environ["PREFECT_API_URL"] = st["url"]
    return st["url"]


class _UserErrorFormatter(logging.Formatter):
    """Console formatter that prints user errors (WxcError) as one line, no traceback."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, WxcError):
            saved = record.exc_info, record.exc_text
            record.exc_info, record.exc_text = None, None
            try:
                return self.inner.format(record)
            finally:
                record.exc_info, record.exc_text = saved
        return self.inner.format(record)


def _quiet_user_errors(watch=None) -> None:
    # Dask's own INFO lines (nanny/scheduler start and stop) drown the flow's story
    for name in (
        "distributed",
        "distributed.nanny",
        "distributed.scheduler",
        "distributed.worker",
        "distributed.core",
        "distributed.http.proxy",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", ""):
        for h in logging.getLogger(name).handlers:
            if isinstance(h, logging.StreamHandler) and not isinstance(
                h.formatter, _UserErrorFormatter
            ):
                h.setFormatter(_UserErrorFormatter(h.formatter))
                if watch is not None:
                    from flows.watchdog import ServerLostFilter

                    h.addFilter(ServerLostFilter(watch))


def _load(config: Path, sets: list[str] | None, dask_address: str | None = None):
    from wxmodels.config import load_config

    overrides = list(sets or [])
    if dask_address:
        overrides.append(f"runtime.dask_address={dask_address}")
    return load_config(config, overrides)


_WATCH = None


def _flows():
    """The stage flows, against a healthy API that is watched for the rest of the command
    (see :mod:`flows.watchdog`)."""
    global _WATCH
    url = _ensure_api()
    import flows.cycle as cycle
    import flows.stages as stages
    from flows.watchdog import ServerWatch

    if _WATCH is None:
        _WATCH = ServerWatch(url).__enter__()
    _quiet_user_errors(_WATCH)
    return stages, cycle


def _print_json(obj: Any) -> None:
    out.print_json(json.dumps(obj, default=str))


# -- stages ------------------------------------------------------------------------------
@app.command()
def ingest(config: ConfigOpt, set_: SetOpt = None) -> None:
    """Append what is new in the configured source to the store."""
    cfg = _load(config, set_)
    stages, _ = _flows()
    rep = stages.ingest_flow(cfg)
    out.print(
        f"store {rep['store']}: read {rep['read']} of {rep['inputs']} inputs, "
        f"+{rep['appended']} steps ({rep['skipped']} already present, "
        f"{len(rep['revised'])} revised), {rep['start']} .. {rep['end']}, version {rep['version']}"
    )
    if rep["gap"]:
        err.print(f"[yellow]{rep['gap']}[/]")
    if rep["missing"]:
        shown = ", ".join(rep["missing"][:8])
        err.print(f"[yellow]missing in the source (kept missing)[/]: {shown}")
    for p in rep["problems"]:
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
    cfg = _load(config, [*(set_ or []), *(["train.init=scratch"] if from_scratch else [])])
    ws = _resolve_warm_start(cfg, warm_start)
    stages, _ = _flows()
    rec = stages.train_flow(cfg, ws)
    out.print(
        f"teacher {rec['id']}: {rec['params']} params, best validation loss "
        f"{rec['best_val']:.4f} ({rec['dir']})"
    )


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

    cfg = _load(config, set_, dask_address)
    teacher = load_latest(cfg, "train", "compress")
    stages, _ = _flows()
    res = stages.compress_flow.with_options(task_runner=dask_runner(cfg.runtime))(
        cfg, teacher["dir"]
    )
    for c in res["cells"]:
        out.print(f"{c['name']:24s} {c['label']:28s} {c['size_bytes']:>10d} bytes")
    for n, e in res["failures"].items():
        err.print(f"[red]{n} failed[/]: {e}")


@app.command()
def evaluate(config: ConfigOpt, set_: SetOpt = None, dask_address: DaskOpt = None) -> None:
    """Score the teacher, the candidates and the baselines; apply the gates."""
    from flows.runners import dask_runner
    from flows.state import load_latest

    cfg = _load(config, set_, dask_address)
    teacher = load_latest(cfg, "train", "evaluate")
    matrix = load_latest(cfg, "compress", "evaluate")
    stages, _ = _flows()
    ev = stages.evaluate_flow.with_options(task_runner=dask_runner(cfg.runtime))(
        cfg, teacher, matrix["cells"], matrix["failures"]
    )
    _print_candidates(ev)
    _print_verdict(ev.get("incumbent"))


@app.command()
def promote(config: ConfigOpt, set_: SetOpt = None) -> None:
    """Publish the teacher and the winners of the latest evaluation to the registry."""
    from flows.state import load_latest

    cfg = _load(config, set_)
    teacher = load_latest(cfg, "train", "promote")
    ev = load_latest(cfg, "evaluate", "promote")
    stages, _ = _flows()
    _print_verdict(ev.get("incumbent"))
    for p in stages.promote_flow(cfg, ev, teacher["dir"]):
        out.print(f"{p['model']}@{p['version']} ({p['cell']}): {', '.join(p['aliases'])}")


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
    cfg = _load(config, sets, dask_address)
    ws = _resolve_warm_start(cfg, warm_start)
    _, cycle = _flows()
    rep = cycle.cycle_flow(cfg, ws)
    if report:
        from wxmodels.utils import write_json_atomic

        write_json_atomic(report, rep)
    _print_report(rep)
    if report:
        out.print(f"report: {report}")


def _print_candidates(ev: dict[str, Any]) -> None:
    t = Table(title=f"candidates (test window {ev['test_window'][0]} .. {ev['test_window'][1]})")
    for col in ("cell", "recipe", "size (bytes)", "ratio", "ms b1", "speedup", "gates"):
        t.add_column(col)
    te = ev["teacher"]
    t.add_row(
        "teacher",
        "-",
        str(te["size_bytes"]),
        "1.0",
        f"{te['latency_ms_batch1']:.3f}" if te["latency_ms_batch1"] else "-",
        "1.0",
        "-",
    )
    for c in ev["candidates"]:
        lat = c["latency_ms_batch1"]
        t.add_row(
            c["name"],
            c["label"],
            str(c["size_bytes"]),
            f"{te['size_bytes'] / c['size_bytes']:.1f}",
            f"{lat:.3f}" if lat else "-",
            f"{te['latency_ms_batch1'] / lat:.1f}" if lat and te["latency_ms_batch1"] else "-",
            _gate_cell(c["gate"]),
        )
    out.print(t)


def _gate_cell(gate: dict[str, Any]) -> str:
    if gate["passed"]:
        return "[green]pass[/]"
    first = gate["reasons"][0] if gate["reasons"] else ""
    more = f" (+{len(gate['reasons']) - 1} more)" if len(gate["reasons"]) > 1 else ""
    return f"[red]fail[/]: {first}{more}"


def _print_verdict(inc: dict[str, Any] | None) -> None:
    """The new teacher against the registry's current one."""
    if not inc:
        return
    v = inc["verdict"]
    ratio = f"mean RMSE ratio {v['mean_ratio']:.4f}" if v["mean_ratio"] is not None else ""
    if v["promote"]:
        out.print(f"new teacher vs current {inc['version']}: {ratio} (may replace it)")
    else:
        err.print(
            f"[yellow]new teacher NOT promoted[/]: worse than the current teacher "
            f"{inc['version']}: " + "; ".join(v["reasons"]) + ". Production is unchanged."
        )


def _print_report(rep: dict[str, Any]) -> None:
    t = Table(title=f"{rep['name']}: candidates")
    for col in ("cell", "recipe", "size ratio", "speedup b1"):
        t.add_column(col, no_wrap=True)
    t.add_column("gates", overflow="fold")
    for c in rep["candidates"]:
        t.add_row(
            c["name"],
            c["recipe"],
            f"{c['size_ratio']:.1f}x",
            f"{c['speedup_batch1']:.1f}x" if c["speedup_batch1"] else "-",
            _gate_cell(c["gate"]),
        )
    out.print(t)
    for f in rep["failures"]:
        err.print(f"[red]cell {f['name']} failed[/]: {f['error']}")
    _print_verdict(rep.get("incumbent"))
    for p in rep["promoted"]:
        out.print(
            f"promoted {p['model']}@{p['version']} ({p['cell']}) as {', '.join(p['aliases'])}"
        )
    out.print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in rep["wall_s"].items()))


# -- consumers ---------------------------------------------------------------------------
def _registry(url: str | None, config: Path | None = None, trusted: list[Path] | None = None):
    from wxmodels.registry import Registry
    from wxmodels.registry.signing import trust_from

    if url is None and os.environ.get("WXC_REGISTRY"):
        url = os.environ["WXC_REGISTRY"]
    so: dict = {}
    if url is None and config is not None:
        cfg = _load(config, None)
        url, so = cfg.promote.registry, dict(cfg.promote.storage_options)
        trusted = [*(trusted or []), *map(Path, cfg.promote.trusted_keys)]
    return Registry(url or ".wxc/registry", so, trust=trust_from(trusted or []))


@app.command()
def predict(
    model: Annotated[str, typer.Option(help="NAME@ALIAS or NAME@VERSION.")],
    start: Annotated[str, typer.Option(help="Initialisation time(s), ISO 8601, comma separated.")],
    out_path: Annotated[Path, typer.Option("--out", help="Output .nc (NetCDF) or .zarr.")],
    leads: Annotated[str, typer.Option(help="Lead times in hours, comma separated.")] = "1,6,24",
    input_: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="Store, Zarr URL or NetCDF file with the analyses (default: the "
            "store the model was trained on).",
        ),
    ] = None,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Take the model from the local cache only.")
    ] = False,
    runtime: Annotated[
        str,
        typer.Option(help="onnx (onnxruntime, edge) or torch (safetensors weights, HPC)."),
    ] = "onnx",
    batch_size: Annotated[int, typer.Option(min=1, help="Initialisations per call.")] = 16,
    threads: Annotated[int, typer.Option(min=1, help="Compute threads.")] = 1,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace --out when it is a forecast wxcompress wrote."),
    ] = False,
    trusted_key: TrustOpt = None,
) -> None:
    """Pull a model (verified, through the local cache) and forecast from the analyses at
    START."""
    from wxmodels.predict import check_output, forecast, parse_starts, write_forecast

    # everything the user typed is checked before any work (a pull, a forecast)
    starts = parse_starts(start)
    try:
        lead_list = [int(x) for x in leads.split(",") if x.strip()]
    except ValueError:
        raise WxcError(f"--leads {leads!r}: give integers, comma separated") from None
    if runtime not in ("onnx", "torch"):
        raise WxcError(f"--runtime {runtime!r}: onnx or torch")
    if input_ and "://" not in input_ and not Path(input_).exists():
        raise WxcError(f"--input {input_} does not exist")
    check_output(out_path, overwrite=overwrite)  # refuse a path we must not touch
    reg = _registry(registry, config, trusted_key)
    dest = reg.pull(model, offline=offline)
    man = json.loads((dest / "manifest.json").read_text())
    name, version = man["name"], man["version"]
    source = input_ or man["lineage"]["store_url"]
    ds = forecast(
        dest,
        source,
        starts,
        lead_list,
        runtime=runtime,  # type: ignore[arg-type]
        batch_size=batch_size,
        threads=threads,
    )
    path = write_forecast(ds, out_path, overwrite=overwrite)
    out.print(
        f"{name}@{version} ({runtime}): {len(starts)} forecast(s) from {starts[0]} "
        f"at {lead_list} h -> {path}"
    )


# -- registry ----------------------------------------------------------------------------
@registry_app.command("list")
def registry_list(
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Models, their versions and aliases."""
    reg = _registry(registry, config)
    t = Table(title=f"registry {reg.url}")
    for col in ("model", "version", "kind", "recipe", "size (bytes)", "created", "aliases"):
        t.add_column(col)
    for name in reg.names():
        aliases = reg.aliases(name)
        for m in reg.versions(name):
            tags = [a for a, v in aliases.items() if v == m["version"]]
            t.add_row(
                name,
                m["version"],
                m.get("kind", ""),
                m.get("recipe_label", ""),
                str(m.get("metrics", {}).get("size_bytes", "")),
                m.get("created_at", ""),
                ", ".join(tags),
            )
    out.print(t)


@registry_app.command("show")
def registry_show(
    ref: str,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """The manifest of NAME@ALIAS or NAME@VERSION."""
    _print_json(_registry(registry, config).manifest(ref))


@registry_app.command("pull")
def registry_pull(
    ref: str,
    dest: Annotated[
        Path | None, typer.Argument(help="Copy the files here (default: the cache's own copy).")
    ] = None,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    packed: Annotated[
        bool,
        typer.Option(
            "--packed",
            help="Download the compact model.wxpack and unpack it to model.onnx (verified).",
        ),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Use the local cache only (aliases as last seen online)."),
    ] = False,
    trusted_key: TrustOpt = None,
) -> None:
    """Fetch NAME@ALIAS through the local cache ($WXC_CACHE), verifying every sha256 (and the
    signature, where trusted keys are configured)."""
    reg = _registry(registry, config, trusted_key)
    path = reg.pull(ref, dest, packed=packed, offline=offline)
    man = json.loads((path / "manifest.json").read_text())
    how = " from the pack" if packed else ""
    how += " (offline, from the cache)" if offline else ""
    signed = " and signature" if reg.trust.required else ""
    out.print(f"{man['name']}@{man['version']} -> {path}{how} (checksums{signed} verified)")


@registry_app.command("keygen")
def registry_keygen(
    directory: Annotated[Path, typer.Argument(help="Where to write the key pair.")],
) -> None:
    """Create an Ed25519 key pair for signing versions: publish with
    WXC_SIGNING_KEY_FILE=DIR/wxc-signing.pem; deployers trust DIR/wxc-signing.pub."""
    from wxmodels.registry.signing import generate_keypair

    priv, pub = generate_keypair(directory)
    out.print(f"private key {priv} (keep it secret; mode 0600)\npublic key {pub}")


@registry_app.command("gc")
def registry_gc(
    older_than: Annotated[
        float, typer.Option(help="Only what is at least this many hours old (in-flight writes).")
    ] = 1.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Remove what interrupted publications left (versions without a manifest)."""
    gone = _registry(registry, config).gc(older_than=older_than * 3600, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for p in gone:
        out.print(f"{verb} {p}")
    out.print(f"{verb} {len(gone)} item(s)")


@registry_app.command("history")
def registry_history(
    ref: str,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """The events of NAME@ALIAS, oldest first."""
    from wxmodels.registry import parse_ref

    name, alias = parse_ref(ref)
    t = Table(title=f"{ref}")
    for col in ("at", "version", "previous", "by", "reason", "run"):
        t.add_column(col)
    for e in _registry(registry, config).history(name, alias):
        t.add_row(e.at, e.version, e.previous or "", e.by, e.reason, e.run)
    out.print(t)


@registry_app.command("rollback")
def registry_rollback(
    ref: str,
    reason: str = "manual rollback",
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Move NAME@ALIAS back to the version it pointed at before."""
    from wxmodels.registry import parse_ref

    name, alias = parse_ref(ref)
    reg = _registry(registry, config)
    ev = reg.rollback(name, alias, reason=reason)
    out.print(f"{name}@{alias}: {ev.previous} -> {reg.resolve_alias(name, alias)}")


# -- local stack -------------------------------------------------------------------------
@app.command()
def up(
    deployments: Annotated[
        str, typer.Option(help="Deployments file the runner serves ('' for none).")
    ] = "configs/deployments.yaml",
    s3: Annotated[bool, typer.Option("--s3", help="Also run the S3 server (Swift).")] = False,
    dask: Annotated[
        int, typer.Option(min=0, help="Also run a Dask scheduler with this many workers.")
    ] = 0,
) -> None:
    """Start the local stack: Prefect server (SQLite under $WXC_HOME), the deployments' runner,
    optionally an S3 server and a Dask cluster. Health-checked; logs in $WXC_HOME/logs."""
    from infra import stack

    try:
        st = stack.up(deployments=deployments or None, s3=s3, dask_workers=dask)
    except RuntimeError as e:
        raise WxcError(str(e)) from None
    _print_stack(st)


@app.command()
def down() -> None:
    """Stop the local stack."""
    from infra import stack

    out.print("stopped" if stack.down() else "nothing to stop")


@app.command()
def status() -> None:
    """Health of the local stack."""
    from infra import stack

    _print_stack(stack.status())


def _print_stack(st: dict[str, Any]) -> None:
    out.print(
        f"Prefect UI {st['ui']} (API {st['url']}): {'healthy' if st['healthy'] else 'not running'}"
    )
    for name, svc in sorted(st.get("services", {}).items()):
        state = "healthy" if svc.get("healthy") else ("running" if svc.get("alive") else "stopped")
        port = f" port {svc['port']}" if "port" in svc else ""
        out.print(f"  {name:<16} {state:<8} pid {svc.get('pid')}{port}  log {svc.get('log', '-')}")


def main(argv: list[str] | None = None) -> None:
    """The ``wxc`` entry point (``argv``: the arguments, default ``sys.argv[1:]``)."""
    _setup_env()
    import click

    try:
        try:
            app(args=argv, standalone_mode=False)
        except BaseException:
            if _WATCH is not None and _WATCH.gone():
                from flows.watchdog import EXIT_SERVER_LOST

                _WATCH.say(lambda m: err.print(f"[bold red]error:[/] {m}", soft_wrap=True))
                sys.exit(EXIT_SERVER_LOST)
            raise
    except WxcError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
