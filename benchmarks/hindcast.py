"""Hindcast throughput on Dask: the same re-forecast plan run in one process, on a
LocalCluster of one worker and on one of two (one thread each, so the same process count per
worker), outputs compared (target: 2 workers >= 1.7x one worker, output identical to the
serial run).

Run: ``python -m benchmarks.hindcast --registry R --model NAME@edge --start T0 --end T1``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.common import machine, write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", required=True)
    ap.add_argument("--model", required=True, help="NAME@ALIAS")
    ap.add_argument("--store", help="analyses (default: the model's store)")
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--every", type=int, default=6)
    ap.add_argument("--leads", default="1,6,24")
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--runtime", default="onnx")
    ap.add_argument("--name", default="hindcast")
    a = ap.parse_args()
    import xarray as xr
    from distributed import LocalCluster

    from wxmodels.hindcast import hindcast, plan_hindcast
    from wxmodels.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="wxc-hindcast-"))
    model = Registry(a.registry).pull(a.model, work / "model")
    man = json.loads((model / "manifest.json").read_text())
    store = a.store or man["lineage"]["store_url"]
    leads = [int(x) for x in a.leads.split(",")]
    runs: dict[str, dict] = {}
    for label, workers in (("serial", 0), ("1 worker", 1), ("2 workers", 2)):
        out = work / f"{label.replace(' ', '-')}.zarr"
        plan = plan_hindcast(
            model, store, a.start, a.end, a.every, leads, out, runtime=a.runtime, block=a.block
        )
        if workers == 0:
            rep = hindcast(plan)
        else:
            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster:
                from flows.runners import warm

                warm(cluster.scheduler_address)  # imports paid before the clock starts
                rep = hindcast(plan, address=cluster.scheduler_address)
        runs[label] = {**rep, "inits_per_s": rep["inits"] / rep["seconds"], "out": str(out)}
        print(f"{label}: {rep['inits']} inits in {rep['seconds']:.1f} s", flush=True)
    with xr.open_zarr(runs["serial"]["out"]) as ref:
        ref = ref.load()
        for label in ("1 worker", "2 workers"):
            with xr.open_zarr(runs[label]["out"]) as got:
                runs[label]["identical_to_serial"] = bool(ref.identical(got.load()))
    ratio = runs["2 workers"]["inits_per_s"] / runs["1 worker"]["inits_per_s"]
    rows = [
        "| run | inits | blocks | seconds | inits/s | identical to serial |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in runs.items():
        rows.append(
            f"| {label} | {r['inits']} | {r['blocks']} | {r['seconds']:.1f} | "
            f"{r['inits_per_s']:.1f} | {r.get('identical_to_serial', '-')} |"
        )
    body = "\n".join(
        [
            f"Command: `python -m benchmarks.hindcast {' '.join(sys.argv[1:])}`; "
            f"machine: {machine()}.",
            "",
            f"Model `{man['name']}@{man['version']}` ({man.get('recipe_label', 'teacher')}), "
            f"{a.runtime}; initialisations every {a.every} h from {a.start} to {a.end}, leads "
            f"{leads} h, blocks of {a.block} (one task and one batch each).",
            "",
            *rows,
            "",
            f"Two workers / one worker: **{ratio:.2f}x**.",
        ]
    )
    print(body)
    print(write_report(a.name, "Hindcasts on Dask", body, {"runs": runs, "ratio": ratio}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
