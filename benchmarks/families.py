"""The transformer family on a real record: teacher skill beside the conv teacher and every
baseline, and what its compression delivers (issue: any teacher).

Runs the whole cycle (``wxc run``) once per seed with the transformer config (each seed trains
its own teacher and builds the matrix: int8, dynamic int8, a depth-distilled student 8x
shallower), then reports over seeds:

* the transformer teacher's RMSE per lead beside the conv teacher's (the skill benchmark's
  report on the same record, ``skill-<conv config>.json``: same data, split and baselines) and
  every baseline's;
* the depth-distilled student's RMSE relative to its own seed's teacher at every lead (target:
  within 2 %, FuXi's figure) and its batch-1 speedup in onnxruntime (target: >= 4x);
* int8's batch-1 and batch-16 speedups, with onnxruntime's per-operator profile of the teacher
  and its int8 form (one thread, batch 1) where the speedup is below 1.5x.

Run: ``python -m benchmarks.families --seeds 3``
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import compression
from benchmarks.common import REPORTS, write_report

BASELINES = ("persistence", "climatology", "linear", "cell_linear", "ridge")


def _fmt(xs: list[float], digits: int = 3) -> str:
    a = np.asarray(xs, float)
    return f"{np.nanmean(a):.{digits}g} ± {np.nanstd(a):.2g}"


def _rmse(d: dict, var: str, leads: list[str]) -> list[float]:
    return [np.nan if d[var][lead] is None else float(d[var][lead]) for lead in leads]


def op_profile(path: Path, feeds: dict[str, np.ndarray], repeats: int = 200) -> dict[str, float]:
    """Microseconds per call by operator type (onnxruntime's profiler, 1 thread, batch 1)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = str(Path(tmp) / "prof")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        want = {i.name for i in sess.get_inputs()}
        feed = {k: v for k, v in feeds.items() if k in want}
        for _ in range(repeats):
            sess.run(None, feed)
        trace = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            by_op[ev["args"]["op_name"]] += ev["dur"] / repeats
    return dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


def _record(path: Path) -> dict:
    data = json.loads(path.read_text())
    return data.get("_data", data)


def profiles(workdir: Path, seed: int) -> dict[str, dict[str, float]]:
    """The per-operator profile of seed ``seed``'s teacher and its int8 cells."""
    from wxmodels.export.onnx import OrtForecaster

    base = workdir / f"seed{seed}"
    teacher = next((base / "teachers").glob("*/model.onnx"))
    cells = {
        _record(d / "cell.json")["name"]: d / "model.onnx"
        for d in (base / "candidates").iterdir()
        if (d / "cell.json").exists()
    }
    ort_t = OrtForecaster(teacher)
    h, w = ort_t.io.shape if ort_t.io else (1, 1)
    nv = len(ort_t.variables or [0])
    rng = np.random.default_rng(0)
    state = (1.0e5 + 1.0e3 * rng.standard_normal((1, ort_t.history, nv, h, w))).astype(np.float32)
    feeds = ort_t.feeds(state, np.array([300_000.0], np.float32))
    out = {"teacher": op_profile(teacher, feeds)}
    for name in ("int8", "dynamic"):
        if name in cells:
            out[name] = op_profile(cells[name], feeds)
    return out


def summarise(res: dict, conv: dict | None) -> dict:
    runs = res["runs"]
    var = next(iter(runs[0]["teacher"]["rmse"]))
    leads = list(runs[0]["teacher"]["rmse"][var])
    teacher = np.array([_rmse(r["teacher"]["rmse"], var, leads) for r in runs])
    out: dict = {"variable": var, "leads": leads, "teacher": teacher.tolist()}
    out["baselines"] = {
        b: np.array([_rmse(r["baselines"][b]["rmse"], var, leads) for r in runs]).tolist()
        for b in BASELINES
        if b in runs[0]["baselines"]
    }
    if conv is not None:
        out["conv_teacher"] = [_rmse(t["scores"]["rmse"], var, leads) for t in conv["teachers"]]
    cells: dict[str, dict] = {}
    for k, r in enumerate(runs):
        for c in r["candidates"]:
            e = cells.setdefault(c["name"], {"recipe": c["recipe"], "params": c["params"]})
            e.setdefault("rel", []).append(
                (np.array(_rmse(c["rmse"], var, leads)) / teacher[k] - 1).tolist()
            )
            e.setdefault("b1", []).append(c["speedup_batch1"])
            e.setdefault("b16", []).append(
                r["teacher_latency_ms_batch16"] / c["latency_ms_batch16"]
                if c["latency_ms_batch16"]
                else None
            )
            e.setdefault("size", []).append(c["size_ratio"])
            e.setdefault("passed", []).append(bool(c["gate"]["passed"]))
    out["cells"] = cells
    depth = next((n for n, c in cells.items() if c["recipe"] == "depth"), None)
    checks = {}
    if depth:
        rel = np.array(cells[depth]["rel"])
        checks["depth student 8x shallower within 2 % RMSE at every lead (every seed)"] = bool(
            np.all(rel <= 0.02)
        )
        checks["depth student within 2 % at every lead (seed mean)"] = bool(
            np.all(rel.mean(axis=0) <= 0.02)
        )
        checks["depth student >= 4x faster at batch 1"] = bool(
            np.nanmean(np.array(cells[depth]["b1"], float)) >= 4
        )
    if "int8" in cells:
        checks["int8 faster than fp32 at batch 1"] = bool(
            np.nanmean(np.array(cells["int8"]["b1"], float)) > 1
        )
    out["checks"] = checks
    return out


def report(res: dict, s: dict, cmd: str, prof: dict | None) -> str:
    runs, leads = res["runs"], s["leads"]
    head = f"| model | {' | '.join(f'{lead} h' for lead in leads)} |"
    sep = "|---|" + "---|" * len(leads)

    def row(name: str, rows: list[list[float]]) -> str:
        a = np.array(rows, float)
        return (
            f"| {name} | "
            + " | ".join(
                f"{np.nanmean(a[:, j]):.1f} ± {np.nanstd(a[:, j]):.1f}" for j in range(len(leads))
            )
            + " |"
        )

    lines = [
        f"Command: `{cmd}`",
        f"Machine: {res['machine']}. {len(runs)} seeds; cycle wall time per seed: "
        + ", ".join(f"{r['cycle_s']:.0f} s" for r in runs)
        + f". Teacher: {runs[0]['teacher']['params']} params, batch-1 latency "
        f"{_fmt([r['teacher_latency_ms_batch1'] for r in runs])} ms (onnxruntime, 1 thread).",
        "",
        f"## Skill on the test window: RMSE of {s['variable']} (Pa, mean ± std over seeds)",
        "",
        head,
        sep,
        row("transformer teacher", s["teacher"]),
    ]
    if "conv_teacher" in s:
        lines.append(row("conv (U-Net) teacher ¹", s["conv_teacher"]))
    for b, rows in s["baselines"].items():
        lines.append(row(b, rows))
    if "conv_teacher" in s:
        lines += [
            "",
            "¹ from the skill benchmark's report on the same record, split and test window "
            "(`skill-ncep-slp-natl.md`, 3 seeds).",
        ]
    lines += [
        "",
        "## Compression of the transformer (mean ± std over seeds)",
        "",
        "RMSE delta: relative to the seed's own teacher. Speedups: the teacher's onnxruntime "
        "latency over the cell's (1 thread).",
        "",
        f"| cell | recipe | params | size x | batch-1 x | batch-16 x | "
        f"{' | '.join(f'ΔRMSE {lead} h' for lead in leads)} | gates |",
        "|---|---|---|---|---|---|" + "---|" * len(leads) + "---|",
    ]
    for name, c in s["cells"].items():
        rel = np.array(c["rel"], float)
        lines.append(
            f"| {name} | {c['recipe']} | {c['params']} | {_fmt(c['size'])} | {_fmt(c['b1'])} | "
            f"{_fmt(c['b16'])} | "
            + " | ".join(
                f"{100 * rel[:, j].mean():+.1f} ± {100 * rel[:, j].std():.1f} %"
                for j in range(len(leads))
            )
            + f" | {sum(c['passed'])}/{len(c['passed'])} |"
        )
    lines += ["", "| target | met |", "|---|---|"]
    lines += [f"| {k} | {'✓' if ok else '✗'} |" for k, ok in s["checks"].items()]
    if prof:
        lines += [
            "",
            "## onnxruntime per-operator time, batch 1, 1 thread (µs per call, seed 0)",
            "",
            "| op | " + " | ".join(prof) + " |",
            "|---|" + "---|" * len(prof),
        ]
        ops = sorted(
            {o for p in prof.values() for o in p},
            key=lambda o: -max(p.get(o, 0.0) for p in prof.values()),
        )
        for o in ops[:14]:
            lines.append(
                f"| {o} | " + " | ".join(f"{p.get(o, 0):.1f}" for p in prof.values()) + " |"
            )
        lines.append(
            "| total | " + " | ".join(f"{sum(p.values()):.1f}" for p in prof.values()) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/ncep-slp-natl-transformer.yaml")
    ap.add_argument("--conv-report", default="skill-ncep-slp-natl")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--workdir", default=None, help="keep the seeds' workdirs here")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.workdir or scratch)
        work.mkdir(parents=True, exist_ok=True)
        res = compression.slim(compression.run(args.config, args.seeds, args.sets, str(work)))
        conv_path = REPORTS / f"{args.conv_report}.json"
        conv = json.loads(conv_path.read_text()) if conv_path.exists() else None
        s = summarise(res, conv)
        prof = None
        if "int8" in s["cells"] and np.nanmean(np.array(s["cells"]["int8"]["b1"], float)) < 1.5:
            prof = profiles(work, 0)
    cmd = f"python -m benchmarks.families --config {args.config} --seeds {args.seeds}" + "".join(
        f" --set {x}" for x in args.sets
    )
    body = report(res, s, cmd, prof)
    name = args.name or f"families-{Path(args.config).stem}"
    data = {**res, "summary": s, "profile": prof}
    print(
        write_report(
            name, f"Transformer teacher and its compression: {Path(args.config).stem}", body, data
        )
    )
    print(body)


if __name__ == "__main__":
    main()
