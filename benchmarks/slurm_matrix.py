"""The compression matrix on SLURM worker jobs vs a LocalCluster (``runtime.cluster: slurm``).

Builds the 12 cells of :mod:`benchmarks.matrix` from one teacher twice, as the ``compress``
flow on 2 single-threaded Dask workers each time: on a LocalCluster, then on 2 SLURM jobs of
one core each (dask-jobqueue). Reports, for each, the time to get warm workers (cluster start,
SLURM queueing, imports) and the flow's wall time, and checks that every cell's result is the
same (its ONNX file's SHA-256, packed size, parameters, sparsity, parity). Fits get no time
budget here (``compress.max_minutes_per_fit`` large): a budget cuts a fit by machine speed.

Without ``SLURM_CONF`` in the environment it starts a single-node SLURM on loopback
(:mod:`infra.slurm`; root, Debian's packages) and stops it at the end.

Run: ``python -m benchmarks.slurm_matrix`` (timed runs: under ``flock /work/bench.lock``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, machine, write_report
from benchmarks.matrix import GRID
from wxmodels.config import load_config


def _cells(matrix) -> dict[str, dict[str, Any]]:
    return {
        c.name: {
            "onnx_sha256": hashlib.sha256(Path(c.onnx).read_bytes()).hexdigest(),
            "pack_bytes": c.pack_bytes,
            "params": c.params,
            "sparsity": c.sparsity,
            "parity": c.parity,
            "worker_s": c.wall_s,
        }
        for c in matrix.cells
    }


@contextlib.contextmanager
def _slurm(root: Path):
    """The site's SLURM (``SLURM_CONF`` set), else one on loopback for the block."""
    if os.environ.get("SLURM_CONF"):
        yield "the site's (SLURM_CONF)"
        return
    from infra.slurm import LoopbackSlurm

    with LoopbackSlurm(root) as slurm:
        os.environ.update(slurm.env())
        try:
            yield "single node on loopback (infra.slurm)"
        finally:
            os.environ.pop("SLURM_CONF", None)


def run(config: str, partition: str) -> dict[str, Any]:
    from prefect.testing.utilities import prefect_test_harness

    from flows.runners import dask_runner, run_cluster
    from flows.stages import compress_flow
    from wxmodels.data.ingest import ingest
    from wxmodels.pipeline.teacher import train_teacher

    os.environ.pop("WXC_DASK_ADDRESS", None)
    with tempfile.TemporaryDirectory() as tmp:
        sets = [
            f"workdir={tmp}/w",
            f"data.store={tmp}/s.zarr",
            "compress.reuse=false",
            "compress.max_minutes_per_fit=60",
            "runtime.n_workers=2",
            "runtime.threads_per_worker=1",
            "runtime.torch_threads=1",
            "train.threads=1",
        ]
        base = load_config(REPO / config, sets)
        base = base.model_copy(
            update={
                "compress": base.compress.model_validate(
                    {**base.compress.model_dump(), "cells": [], "grid": GRID}
                )
            }
        )
        names = [c.name for c in base.compress.cells]
        ingest(base.data)
        teacher = train_teacher(base)
        slurm_rt = {
            "cluster": "slurm",
            "slurm": {
                "partition": partition,
                "cores": 1,
                "processes": 1,
                "jobs": 2,
                "memory": "4GiB",
                "walltime": "01:00:00",
                "interface": "lo",
                "log_directory": f"{tmp}/slurm-logs",
            },
        }
        out: dict[str, Any] = {}
        with _slurm(Path(tmp) / "slurm") as where, prefect_test_harness(server_startup_timeout=120):
            for kind in ("local", "slurm"):
                rt = base.runtime.model_validate(
                    {**base.runtime.model_dump(), **(slurm_rt if kind == "slurm" else {})}
                )
                cfg = base.model_copy(update={"workdir": f"{tmp}/{kind}", "runtime": rt})
                load0 = os.getloadavg()[0]
                t0 = time.perf_counter()
                with run_cluster(rt) as address:
                    t_ready = time.perf_counter() - t0
                    t = time.perf_counter()
                    matrix = compress_flow.with_options(task_runner=dask_runner(rt, address))(
                        cfg, teacher.dir
                    )
                    t_flow = time.perf_counter() - t
                out[kind] = {
                    "ready_s": t_ready,
                    "flow_s": t_flow,
                    "total_s": time.perf_counter() - t0,
                    # other work on the machine slows either run: the 1-min load average
                    "load_before": load0,
                    "load_after": os.getloadavg()[0],
                    "failures": matrix.failures,
                    "cells": _cells(matrix),
                }
    keys = ("onnx_sha256", "pack_bytes", "params", "sparsity", "parity")
    same = {
        name: all(out["local"]["cells"][name][k] == c[k] for k in keys)
        for name, c in out["slurm"]["cells"].items()
        if name in out["local"]["cells"]
    }
    return {
        "config": config,
        "machine": machine(),
        "slurm": where,
        "partition": partition,
        "runs": out,
        "same_cells": same,
        "cells": names,
        "all_same": sorted(same) == sorted(names) and all(same.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--partition", default="debug")
    args = ap.parse_args()
    res = run(args.config, args.partition)
    loc, sl = res["runs"]["local"], res["runs"]["slurm"]
    rows = [
        f"| {name} | {loc['cells'][name]['onnx_sha256'][:12]} | "
        f"{sl['cells'][name]['onnx_sha256'][:12]} | {loc['cells'][name]['pack_bytes']} | "
        f"{loc['cells'][name]['worker_s']:.1f} | {sl['cells'][name]['worker_s']:.1f} | "
        f"{'yes' if ok else 'NO'} |"
        for name, ok in res["same_cells"].items()
    ]
    body = "\n".join(
        [
            f"Command: `flock /work/bench.lock python -m benchmarks.slurm_matrix --config "
            f"{args.config}`",
            f"Machine: {res['machine']}. SLURM: {res['slurm']}, partition {args.partition}.",
            "",
            "Both runs: the `compress` flow on 2 single-threaded Dask workers, the same teacher, "
            "every cell rebuilt (`compress.reuse=false`), no time budget on fits.",
            "",
            "| figure | LocalCluster | SLURM (2 jobs x 1 core) |",
            "|---|---|---|",
            f"| warm workers ready (start, queue, imports) | {loc['ready_s']:.1f} s | "
            f"{sl['ready_s']:.1f} s |",
            f"| compress flow | {loc['flow_s']:.1f} s | {sl['flow_s']:.1f} s |",
            f"| total | {loc['total_s']:.1f} s | {sl['total_s']:.1f} s |",
            f"| 1-min load average before / after (on {res['machine']['cpus']} cores) | "
            f"{loc['load_before']:.1f} / {loc['load_after']:.1f} | "
            f"{sl['load_before']:.1f} / {sl['load_after']:.1f} |",
            f"| cells built / failed | {len(loc['cells'])} / {len(loc['failures'])} | "
            f"{len(sl['cells'])} / {len(sl['failures'])} |",
            "",
            f"Every cell identical on both: **{'yes' if res['all_same'] else 'NO'}** "
            "(ONNX SHA-256, packed bytes, parameters, sparsity, parity).",
            "",
            "| cell | ONNX sha256 (local) | ONNX sha256 (SLURM) | packed bytes | "
            "in a worker, local (s) | in a worker, SLURM (s) | same |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            "The SLURM run's ready time is the scheduler's start, `sbatch --test-only`, two",
            "`sbatch` submissions, the jobs' start and each worker importing the pipeline",
            "(`flows.runners.WarmWorker`) before the first cell; the LocalCluster's is its",
            "processes' start and the same imports. The jobs are cancelled when the block ends.",
            "Both clusters run the same processes on the same 2 cores here, so the times",
            "differ by what else the machine was doing (the load averages above), not by SLURM;",
            "what this shows is that the matrix completes on SLURM-launched workers with the",
            "same cells.",
        ]
    )
    print(write_report("slurm-matrix", "Compression matrix on SLURM workers", body, res))
    print(body)


if __name__ == "__main__":
    main()
