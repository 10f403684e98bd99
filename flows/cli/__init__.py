"""``wxc``: the command line of wxcompress.

Stage commands run as Prefect flows against the local stack (started on demand) or the server
in ``PREFECT_API_URL``; registry and predict commands need no server. One module per room:
:mod:`.stages`, :mod:`.replay`, :mod:`.predict`, :mod:`.registry`, :mod:`.stack`; what they
share is in :mod:`.common`, how results are shown in :mod:`.present`.
"""

from __future__ import annotations

import sys

# isort: off
# the modules register their commands; the help lists them in this order
from flows.cli import stages, replay, predict, registry, stack  # noqa: F401
from flows.cli import common

# isort: on
from flows.cli.common import app, err, setup_env
from wxmodels.errors import WxcError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """The ``wxc`` entry point (``argv``: the arguments, default ``sys.argv[1:]``)."""
    setup_env()
    import click

    try:
        try:
            app(args=argv, standalone_mode=False)
        except BaseException:
            if common.WATCH is not None and common.WATCH.gone():
                from flows.watchdog import EXIT_SERVER_LOST, end_children

                end_children()  # their late log lines would follow the one line
                common.WATCH.say(lambda m: err.print(f"[bold red]error:[/] {m}", soft_wrap=True))
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
