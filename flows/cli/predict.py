"""``wxc predict``: pull a model (verified) and forecast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import RegistryOpt, TrustOpt, app, load, open_registry, out
from wxmodels.errors import WxcError


def _checked(leads: str, runtime: str, input_: str | None) -> list[int]:
    """What the user typed, checked before any work (a pull, a forecast): the leads, the
    runtime, a local input that exists."""
    try:
        lead_list = [int(x) for x in leads.split(",") if x.strip()]
    except ValueError:
        raise WxcError(f"--leads {leads!r}: give integers, comma separated") from None
    if runtime not in ("onnx", "torch"):
        raise WxcError(f"--runtime {runtime!r}: onnx or torch")
    if input_ and "://" not in input_ and not Path(input_).exists():
        raise WxcError(f"--input {input_} does not exist")
    return lead_list


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
    lead_list = _checked(leads, runtime, input_)
    check_output(out_path, overwrite=overwrite)  # refuse a path we must not touch
    reg = open_registry(registry, config, trusted_key)
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


@app.command()
def hindcast(
    model: Annotated[str, typer.Option(help="NAME@ALIAS or NAME@VERSION.")],
    start: Annotated[str, typer.Option(help="First initialisation time, ISO 8601.")],
    end: Annotated[str, typer.Option(help="Last initialisation time, ISO 8601 (inclusive).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output Zarr store (.zarr).")],
    every: Annotated[int, typer.Option(min=1, help="Hours between initialisations.")] = 6,
    leads: Annotated[str, typer.Option(help="Lead times in hours, comma separated.")] = "1,6,24",
    input_: Annotated[
        str | None,
        typer.Option("--input", help="Store with the analyses (default: the model's store)."),
    ] = None,
    runtime: Annotated[str, typer.Option(help="onnx or torch.")] = "onnx",
    block: Annotated[
        int, typer.Option(min=1, help="Initialisations per task (and per batch).")
    ] = 32,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes of a LocalCluster (1: in this process).")
    ] = 1,
    dask_address: Annotated[
        str | None, typer.Option(help="Run the blocks on the Dask cluster at this address.")
    ] = None,
    registry: RegistryOpt = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="A cycle config: its registry, and its runtime (runtime.cluster: slurm runs "
            "the blocks on SLURM worker jobs; runtime.dask_address joins that scheduler).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --out when it is another hindcast.")
    ] = False,
    trusted_key: TrustOpt = None,
) -> None:
    """Forecast every EVERY hours from START to END (re-forecasts) into one Zarr store, block
    by block, in this process or on Dask; run it again to resume where it stopped."""
    from rich.progress import Progress

    from wxmodels.hindcast import hindcast as run_hindcast
    from wxmodels.hindcast import plan_hindcast

    lead_list = _checked(leads, runtime, input_)
    if out_path.suffix != ".zarr":
        raise WxcError(f"--out {out_path}: a hindcast is written as a Zarr store (.zarr)")
    reg = open_registry(registry, config, trusted_key)
    dest = reg.pull(model)
    man = json.loads((dest / "manifest.json").read_text())
    plan = plan_hindcast(
        dest,
        input_ or man["lineage"]["store_url"],
        start,
        end,
        every,
        lead_list,
        out_path,
        runtime=runtime,  # type: ignore[arg-type]
        block=block,
    )
    # the config's runtime: `cluster: slurm` runs the blocks on SLURM worker jobs
    rt = load(config, None).runtime if config is not None else None
    with Progress(transient=True) as bar:
        task = bar.add_task("hindcast blocks", total=plan.n_blocks)
        rep = run_hindcast(
            plan,
            address=dask_address or (rt.dask_address if rt else None),
            workers=workers,
            overwrite=overwrite,
            progress=lambda done, total: bar.update(task, completed=done),
            runtime=rt,
        )
    out.print(
        f"{man['name']}@{man['version']} ({runtime}): {rep['inits']} initialisations in "
        f"{rep['blocks']} blocks ({rep['resumed_blocks']} done before) in "
        f"{rep['seconds']:.1f} s -> {out_path}"
    )
