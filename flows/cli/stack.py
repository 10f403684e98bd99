"""``wxc up``, ``down``, ``status``: the local stack."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import app, out
from flows.cli.present import print_stack
from wxmodels.errors import WxcError


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
    print_stack(st)


@app.command()
def down() -> None:
    """Stop the local stack."""
    from infra import stack

    out.print("stopped" if stack.down() else "nothing to stop")


@app.command()
def status() -> None:
    """Health of the local stack."""
    from infra import stack

    print_stack(stack.status())
