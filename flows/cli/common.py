"""What every ``wxc`` command shares: the app, consoles, options, the environment, loading
configs, reaching the flows (with the server watched), and the one registry resolver."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from wxmodels.errors import WxcError

__all__ = [
    "ConfigOpt",
    "DaskOpt",
    "RegistryOpt",
    "SetOpt",
    "TrustOpt",
    "app",
    "ensure_api",
    "err",
    "load",
    "open_registry",
    "out",
    "print_json",
    "registry_app",
    "setup_env",
    "stage_flows",
]

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
def setup_env() -> None:
    """Defaults that must be in place before prefect is imported."""
    from infra.stack import prefect_env

    for k, v in prefect_env({}).items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    # the library's records outside a flow run (a cluster started before the flow, a worker
    # warming up) go to the terminal or the job log, not to the API with a warning each
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # an interrupted run's worker processes leave semaphores the tracker then reports
    os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")


def ensure_api() -> str:
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


def quiet_user_errors(watch=None) -> None:
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


def load(config: Path, sets: list[str] | None, dask_address: str | None = None):
    from wxmodels.config import load_config

    overrides = list(sets or [])
    if os.environ.get("WXC_REGISTRY"):  # one registry for every command (see open_registry)
        overrides.insert(0, f"promote.registry={os.environ['WXC_REGISTRY']}")
    if dask_address:
        overrides.append(f"runtime.dask_address={dask_address}")
    return load_config(config, overrides)


WATCH = None


def stage_flows():
    """The stage flows, against a healthy API that is watched for the rest of the command
    (see :mod:`flows.watchdog`)."""
    global WATCH
    url = ensure_api()
    import flows.cycle as cycle
    import flows.stages as stages
    from flows.watchdog import ServerWatch

    if WATCH is None:
        WATCH = ServerWatch(url).__enter__()
    quiet_user_errors(WATCH)
    return stages, cycle


def print_json(obj: Any) -> None:
    out.print_json(json.dumps(obj, default=str))


def open_registry(url: str | None, config: Path | None = None, trusted: list[Path] | None = None):
    """The registry every command uses: ``--registry``, else ``$WXC_REGISTRY``, else the
    config's ``promote.registry``, else ``.wxc/registry`` (stage commands get the same through
    :func:`load`, which applies ``$WXC_REGISTRY`` to the config)."""
    from wxmodels.registry import Registry
    from wxmodels.registry.signing import trust_from

    if url is None and os.environ.get("WXC_REGISTRY"):
        url = os.environ["WXC_REGISTRY"]
    so: dict = {}
    if url is None and config is not None:
        cfg = load(config, None)
        url, so = cfg.promote.registry, dict(cfg.promote.storage_options)
        trusted = [*(trusted or []), *map(Path, cfg.promote.trusted_keys)]
    return Registry(url or ".wxc/registry", so, trust=trust_from(trusted or []))
