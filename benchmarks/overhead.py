"""Orchestration overhead (issue: operations).

The same cycle twice in one run, from empty stores and workdirs: (1) the library calls alone,
with the matrix and the scoring on a plain Dask LocalCluster of the same shape (client.map),
and (2) through the Prefect flows (``cycle_flow`` against a local Prefect server, the
DaskTaskRunner on the same cluster shape). Reports both wall times and their ratio
(target: flows / library <= 1.10).

Run: ``python -m benchmarks.overhead --config configs/wfde5-uk.yaml``
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.common import REPO, data_dir, machine, write_report
from wxmodels.config import load_config


def library_cycle(cfg) -> dict[str, float]:
    from distributed import Client

    from flows.runners import local_cluster
    from wxmodels.data.ingest import ingest
    from wxmodels.pipeline import champion
    from wxmodels.pipeline import evaluate as ev
    from wxmodels.pipeline.matrix import build_cell
    from wxmodels.pipeline.promote import promote
    from wxmodels.pipeline.teacher import train_teacher

    wall = {}
    t0 = time.perf_counter()
    ingest(cfg.data)
    wall["ingest"] = time.perf_counter() - t0
    t = time.perf_counter()
    teacher = train_teacher(cfg)
    wall["train"] = time.perf_counter() - t
    with local_cluster(cfg.runtime) as address, Client(address) as client:
        t = time.perf_counter()
        cells_cfg = list(cfg.compress.cells)
        n = len(cells_cfg)
        futs = client.map(build_cell, [cfg] * n, cells_cfg, [teacher.dir] * n)
        cells = client.gather(futs)
        wall["compress"] = time.perf_counter() - t
        t = time.perf_counter()
        inc = champion.challenge(cfg, teacher)
        models = {
            "teacher": teacher.onnx,
            **{c.name: c.onnx for c in cells},
        }
        sf = [client.submit(ev.score_model, cfg, n, p, pure=False) for n, p in models.items()]
        bf = client.submit(ev.score_baselines, cfg, pure=False)
        scores = client.gather(sf)
        lat = client.submit(ev.measure_latencies, cfg, models, pure=False).result()
        evaluation = ev.assemble(cfg, teacher, cells, scores, bf.result(), lat, {}, inc)
        wall["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    promote(cfg, evaluation, teacher.dir, run="benchmark")
    wall["promote"] = time.perf_counter() - t
    wall["total"] = time.perf_counter() - t0
    return wall


def run(config: str, overrides: list[str]) -> dict:
    from prefect.testing.utilities import prefect_test_harness

    from flows.cycle import cycle_flow

    if data_dir() is None and "wfde5" in config:
        raise SystemExit("real data not found: set WXC_DATA_DIR to the shared data folder")
    with tempfile.TemporaryDirectory() as tmp:

        def cfg_for(tag: str):
            return load_config(
                REPO / config,
                [
                    f"workdir={tmp}/{tag}/w",
                    f"data.store={tmp}/{tag}/s.zarr",
                    f"promote.registry={tmp}/{tag}/registry",
                    *overrides,
                ],
            )

        lib = library_cycle(cfg_for("library"))
        print(f"library calls: {lib['total']:.0f} s", flush=True)
        with prefect_test_harness(server_startup_timeout=120):
            t0 = time.perf_counter()
            rep = cycle_flow(cfg_for("flows"))
            flows_s = time.perf_counter() - t0
        print(f"flows: {flows_s:.0f} s", flush=True)
    return {
        "config": config,
        "overrides": overrides,
        "machine": machine(),
        "library_s": lib,
        "flows_s": {**rep["wall_s"], "total_outer": flows_s},
        "ratio": flows_s / lib["total"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/wfde5-uk.yaml")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    r = run(args.config, args.sets)
    lib, fl = r["library_s"], r["flows_s"]
    rows = [
        f"| {k} | {lib[k]:.1f} | {fl.get(k, float('nan')):.1f} |"
        for k in ("ingest", "train", "compress", "evaluate", "promote", "total")
    ]
    body = "\n".join(
        [
            f"Command: `python -m benchmarks.overhead --config {args.config}"
            + "".join(f" --set {s}" for s in args.sets)
            + "`",
            f"Machine: {r['machine']}.",
            "",
            "| stage | library calls (s) | Prefect flows (s) |",
            "|---|---|---|",
            *rows,
            "",
            f"Flows / library (outer wall time, {fl['total_outer']:.1f} s / {lib['total']:.1f} s): "
            f"**{r['ratio']:.3f}** (target <= 1.10).",
            "",
            "Both run from empty stores and workdirs; the teacher trains from scratch in both "
            "(seeded), the matrix and the scoring run on a LocalCluster of the same shape. The "
            "flows' time includes task submission, state and log reporting to a local Prefect "
            "server, artifacts, and their own Dask cluster start-up.",
        ]
    )
    print(
        write_report(
            f"overhead-{args.config.split('/')[-1].split('.')[0]}",
            "Orchestration overhead",
            body,
            r,
        )
    )
    print(body)


if __name__ == "__main__":
    main()
