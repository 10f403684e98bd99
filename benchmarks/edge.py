"""What a deployer gets at the edge: the promoted profiles against the teacher, with the
session options fixed and named (issue: edge runtime; targets: >= 50x smaller, >= 10x faster
at batch 1, RMSE within 2 %, peak RSS <= 1/5 of the teacher's, environment <= 1/10).

1. One cycle per seed (``wxc run --config C``, teacher from scratch; kept in ``--workdir``,
   where seeds already run are measured again without rerunning).
2. For ``teacher``, ``edge`` and ``hpc`` of each seed: file sizes (``.onnx``, packed, ``.ort``),
   batch-1 latency and batch-16 throughput in onnxruntime with one intra-op thread, sequential
   execution and no spinning (the same options for every model), timed in interleaved rounds
   with the per-call floor of an empty graph (an Identity on the same input).
3. Peak resident memory of a whole forecast process: ``wxc-edge predict`` (load, one forecast
   to the longest lead, write) for each profile, and the teacher as the pipeline runs it
   (``wxc predict --runtime torch``); read from the process's own ``VmHWM``.
4. The installed size of an environment with only ``wxcompress[edge]`` against this one.

Run: ``python -m benchmarks.edge --config configs/wfde5-uk.yaml --seeds 3``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import compression
from benchmarks.common import REPO, machine, write_report

PROFILES = ("teacher", "edge", "hpc")
# runs a module as __main__ and writes the process's own peak (VmHWM) to $WXC_PEAK_FILE
_PEAK = (
    "import atexit, os, runpy, sys\n"
    "def _peak():\n"
    "    for l in open('/proc/self/status'):\n"
    "        if l.startswith('VmHWM:'):\n"
    "            open(os.environ['WXC_PEAK_FILE'], 'w').write(l.split()[1])\n"
    "atexit.register(_peak)\n"
    "mod = sys.argv[1]; sys.argv = [mod] + sys.argv[2:]\n"
    "runpy.run_module(mod, run_name='__main__')\n"
)


def peak_of(python: str, module: str, args: list[str], cwd: Path) -> float:
    """Peak resident memory (MB) of ``python -m module args``, as the process saw it."""
    with tempfile.NamedTemporaryFile(suffix=".peak") as f:
        r = subprocess.run(
            [python, "-c", _PEAK, module, *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**os.environ, "WXC_PEAK_FILE": f.name},
            timeout=600,
        )
        if r.returncode != 0:
            raise RuntimeError(f"{module} {' '.join(args)}: {r.stderr[-1500:]}")
        return int(Path(f.name).read_text()) / 1024.0


def _session_feeds(path: Path, batch: int):
    """A session under the fixed options and feeds of the model's shape (random states)."""
    from wxmodels.export.runtime import OrtForecaster

    m = OrtForecaster(path, threads=1, spinning=False)
    h, w = m.io.shape if m.io else (1, 1)
    rng = np.random.default_rng(0)
    state = rng.normal(size=(batch, m.history, len(m.variables or [0]), h, w)).astype(np.float32)
    return m.session, m.feeds(state, np.full(batch, 480_000.0, np.float32))


def interleaved(sess: dict[str, Any], calls: int, rounds: int = 20) -> dict[str, list[float]]:
    """Seconds per call of each ``(session, feeds)``, measured in ``rounds`` alternating rounds
    of ``calls // rounds`` calls (after 20 warm-up calls each), so that a slow spell of a
    shared machine falls on every model alike; ratios come from one run."""
    for s, f in sess.values():
        for _ in range(20):
            s.run(None, f)
    out: dict[str, list[float]] = {k: [] for k in sess}
    per = max(calls // rounds, 1)
    for _ in range(rounds):
        for k, (s, f) in sess.items():
            for _ in range(per):
                t = time.perf_counter()
                s.run(None, f)
                out[k].append(time.perf_counter() - t)
    return out


def empty_graph(shape: tuple[int, ...], d: Path) -> Path:
    """An empty graph (Identity) on ``shape``: the per-call floor under the same options."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Identity", ["state"], ["next"])],
        "empty",
        [helper.make_tensor_value_info("state", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("next", TensorProto.FLOAT, list(shape))],
    )
    p = d / "empty.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    return p


def edge_env(root: Path) -> Path:
    """A virtual environment with ``wxcompress[edge]`` alone (as the tests build it)."""
    import importlib.metadata as md

    src, venv = root / "src", root / "venv"
    src.mkdir(parents=True)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, src / f)
    for d in ("wxmodels", "tasks", "flows", "deployments", "infra"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    links = os.environ.get("PIP_FIND_LINKS") or (
        "/opt/wheels" if Path("/opt/wheels").is_dir() else ""
    )
    flags = ["--find-links", links] if links else []
    py = str(venv / "bin" / "python")
    pins = [f"numpy=={md.version('numpy')}", f"onnxruntime=={md.version('onnxruntime')}"]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", py, *flags, *pins], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", py, *flags, f"{src}[edge]"], check=True)
    return venv


def du_mb(path: Path) -> float:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
    )


def _stats(xs: list[float]) -> dict[str, float]:
    q = np.quantile(xs, [0.1, 0.5, 0.9])
    return {"p10_ms": q[0] * 1e3, "median_ms": q[1] * 1e3, "p90_ms": q[2] * 1e3}


def measure_registry(
    registry: str, model: str, store: str, work: Path, calls: int, venv: Path
) -> dict:
    """One cycle's registry: its profiles pulled by ``wxc-edge`` (in ``venv``), timed together
    with the empty graph, and a forecast process of each measured for memory."""
    from wxmodels.export.runtime import ort_session
    from wxmodels.registry import Registry

    aliases = Registry(registry).aliases(model)
    edge_py = str(venv / "bin" / "python")
    out: dict[str, Any] = {"profiles": {}}
    pulled: dict[str, tuple[Path, dict, dict]] = {}
    for prof in PROFILES:
        if prof not in aliases:
            continue
        d = work / "pulled" / prof
        if not d.exists():
            subprocess.run(
                [str(venv / "bin" / "wxc-edge"), "pull", registry, f"{model}@{aliases[prof]}",
                 str(d), "--all"],
                check=True, cwd=work,
            )  # fmt: skip
        man = json.loads((d / "manifest.json").read_text())
        info = json.loads(
            subprocess.run(
                [str(venv / "bin" / "wxc-edge"), "info", str(d)],
                check=True, capture_output=True, text=True, cwd=work,
            ).stdout
        )  # fmt: skip
        pulled[prof] = (d, man, info)
    first = next(iter(pulled.values()))[2]
    shape = (1, first["history"], len(first["variables"]), *first["grid"])
    b1: dict[str, Any] = {k: _session_feeds(v[0] / "model.onnx", 1) for k, v in pulled.items()}
    b1["floor"] = (ort_session(empty_graph(shape, work), spinning=False),
                   {"state": np.zeros(shape, np.float32)})  # fmt: skip
    for k, v in pulled.items():
        if (v[0] / "model.ort").exists():
            b1[f"{k}.ort"] = _session_feeds(v[0] / "model.ort", 1)
    t1 = interleaved(b1, calls)
    t16 = interleaved(
        {k: _session_feeds(v[0] / "model.onnx", 16) for k, v in pulled.items()},
        max(calls // 8, 40),
    )
    out["floor"] = _stats(t1["floor"])
    an = work / "analyses.npz"
    if not an.exists():
        _analyses(store, first, an)
    leads = "1,6,24" if first["step_hours"] <= 1 else f"{int(first['step_hours'])}"
    for prof, (d, man, _) in pulled.items():
        rss = peak_of(
            edge_py, "wxmodels.edge",
            ["predict", str(d), "--input", str(an), "--leads", leads,
             "--out", str(work / f"{prof}.npz")],
            work,
        )  # fmt: skip
        out["profiles"][prof] = {
            "version": man["version"],
            "recipe": man.get("recipe_label", "teacher"),
            "onnx_bytes": man["files"]["model.onnx"]["size"],
            "ort_bytes": man["files"].get("model.ort", {}).get("size"),
            "batch1": _stats(t1[prof]),
            "batch1_ort": _stats(t1[f"{prof}.ort"]) if f"{prof}.ort" in t1 else None,
            "pack_bytes": man["files"].get("model.wxpack", {}).get("size"),
            "batch16_per_init_ms": statistics.median(t16[prof]) * 1e3 / 16,
            "edge_peak_rss_mb": rss,
            "scorecard": _slim(man.get("scorecard", {}), man.get("cell") or prof),
            "cell": man.get("cell"),
        }
    t = out["profiles"].get("teacher")
    if t is not None:  # the teacher as the pipeline runs it
        t["torch_peak_rss_mb"] = peak_of(
            sys.executable,
            "flows.cli",
            ["predict", "--model", f"{model}@{t['version']}", "--registry", registry,
             "--start", _last_time(store), "--leads", leads, "--runtime", "torch",
             "--out", str(work / "teacher-torch.nc"), "--overwrite"],
            REPO,
        )  # fmt: skip
    return out


def _slim(card: dict, key: str) -> dict:
    """The RMSE tables the report compares (this model's and the teacher's)."""
    return {k: {"rmse": card[k]["rmse"]} for k in {key, "teacher"} if "rmse" in card.get(k, {})}


def _last_time(store: str) -> str:
    from wxmodels.data.store import Store

    return str(np.datetime_as_string(Store(store).open()["time"].values[-1], unit="h"))


def _analyses(store: str, info: dict, out: Path) -> None:
    from wxmodels.data.store import Store

    ds = Store(store).open().isel(time=slice(-info["history"], None))
    np.savez(
        out,
        fields=np.stack([ds[v].values for v in info["variables"]], axis=1),
        variables=np.array(info["variables"]),
        time=ds["time"].values.astype("datetime64[s]").astype(str),
    )


def _rel_rmse(card: dict, key: str) -> dict[str, dict[str, float]]:
    """Per lead: the mean over variables and the worst variable of RMSE(model) /
    RMSE(teacher) - 1."""
    m, t = card.get(key, {}).get("rmse", {}), card.get("teacher", {}).get("rmse", {})
    leads = sorted({ld for v in t.values() for ld in v}, key=float)
    out = {}
    for ld in leads:
        rel = [m[v][ld] / t[v][ld] - 1 for v in t if v in m and t[v].get(ld)]
        out[ld] = {"mean": float(np.mean(rel)), "worst": float(np.max(rel))}
    return out


def _ms(xs: list[float]) -> str:
    return f"{np.mean(xs):.1f} ± {np.std(xs):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def report(res: dict, cmd: str) -> str:
    seeds = res["seeds"]
    has_ort = any(x.get("batch1_ort") for sd in seeds for x in sd["profiles"].values())
    rows = [
        "| seed | profile | cell (recipe) | .onnx bytes | packed bytes | smaller (packed) "
        "| batch 1 ms (p10-p90) | faster | "
        + (".ort batch 1 ms | " if has_ort else "")
        + "batch 16 ms/init | peak RSS MB (wxc-edge) |",
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if has_ort else ""),
    ]
    agg: dict[str, dict[str, list[float]]] = {}
    skill: dict[str, dict[str, list[dict[str, float]]]] = {}
    for k, sd in enumerate(seeds):
        p = sd["profiles"]
        t = p["teacher"]
        for name, x in p.items():
            b1, bo = x["batch1"], x.get("batch1_ort") or {"median_ms": float("nan")}
            pack = x.get("pack_bytes") or x["onnx_bytes"]
            smaller, faster = t["onnx_bytes"] / pack, t["batch1"]["median_ms"] / b1["median_ms"]
            rows.append(
                f"| {k} | {name} | {x['cell'] or name} (`{x['recipe']}`) | {x['onnx_bytes']} | "
                f"{pack} | {smaller:.1f}x | {b1['median_ms']:.3f} ({b1['p10_ms']:.3f}-"
                f"{b1['p90_ms']:.3f}) | {faster:.1f}x | "
                + (f"{bo['median_ms']:.3f} | " if has_ort else "")
                + f"{x['batch16_per_init_ms']:.3f} | {x['edge_peak_rss_mb']:.0f} |"
            )
            a = agg.setdefault(name, {"smaller": [], "faster": [], "rss": []})
            a["smaller"].append(smaller)
            a["faster"].append(faster)
            a["rss"].append(x["edge_peak_rss_mb"] / t["torch_peak_rss_mb"])
            if name != "teacher":
                rel = _rel_rmse(x["scorecard"], x["cell"] or name)
                for ld, r in rel.items():
                    skill.setdefault(name, {}).setdefault(ld, []).append(r)
    leads = sorted({ld for v in skill.values() for ld in v}, key=float)
    sk = ["| profile | " + " | ".join(f"{ld} h" for ld in leads) + " |",
          "|---|" + "---|" * len(leads)]  # fmt: skip
    for name, per in skill.items():
        cells = []
        for ld in leads:
            mean = [r["mean"] * 100 for r in per.get(ld, [])]
            worst = [r["worst"] * 100 for r in per.get(ld, [])]
            cells.append(f"{np.mean(mean):+.1f} % (worst var {np.mean(worst):+.1f} %)")
        sk.append(f"| {name} | " + " | ".join(cells) + " |")
    e = agg.get("edge", agg["teacher"])
    rmse_ok = all(
        np.mean([r["mean"] for r in skill.get("edge", {}).get(ld, [{"mean": 1.0}])]) <= 0.02
        for ld in leads
    )
    env = res["env"]
    targets = [
        "| target | measured | met |",
        "|---|---|---|",
        f"| edge >= 50x smaller (packed) | {_ms(e['smaller'])}x | "
        f"{'✓' if min(e['smaller']) >= 50 else '✗'} |",
        f"| edge >= 10x faster at batch 1 | {_ms(e['faster'])}x (min {min(e['faster']):.1f}x) | "
        f"{'✓' if min(e['faster']) >= 10 else '✗'} |",
        f"| RMSE within 2 % (mean over variables, seed mean, every lead) | see below | "
        f"{'✓' if rmse_ok else '✗'} |",
        f"| peak RSS <= 1/5 of the teacher's | {np.mean(e['rss']):.2f} | "
        f"{'✓' if max(e['rss']) <= 0.2 else '✗'} |",
        f"| edge environment <= 1/10 of the full one | {env['edge_mb'] / env['full_mb']:.3f} | "
        f"{'✓' if env['edge_mb'] / env['full_mb'] <= 0.1 else '✗'} |",
    ]
    fl = [sd["floor"]["median_ms"] for sd in seeds]
    torch_rss = [sd["profiles"]["teacher"]["torch_peak_rss_mb"] for sd in seeds]
    return "\n".join(
        [
            f"Command: `{cmd}`; machine: {res['machine']}; {len(seeds)} seed(s) (one cycle "
            "each: teacher trained from scratch, every cell built, scored and promoted).",
            "",
            *(
                [f"Overrides: {'; '.join(f'`{o}`' for o in res['overrides'])}.", ""]
                if res.get("overrides")
                else []
            ),
            "Session options, the same for every model: onnxruntime CPU, 1 intra-op thread, "
            "sequential, no spinning, full graph optimisation; random states of the model's "
            f"shape; {res['calls']} timed calls per model, interleaved in 20 rounds with the "
            "other profiles and the empty graph (ratios from one run).",
            "",
            *targets,
            "",
            *rows,
            "",
            f"Floor (an empty graph on the same input, same options): "
            f"{np.mean(fl):.3f} ms per call. 'smaller' and 'faster' are against the teacher's "
            "fp32 `.onnx` of the same seed (size; batch-1 median); the packed size is "
            "`model.wxpack`, the transfer form, which unpacks to exactly the `.onnx`.",
            "",
            "RMSE relative to the teacher, seed mean (mean over variables, and the worst "
            "variable; test window of each cycle):",
            "",
            *sk,
            "",
            "Peak resident memory of a whole forecast process (VmHWM): `wxc-edge predict` in an "
            "environment with only the edge runtime; the teacher through the pipeline "
            f"(`wxc predict --runtime torch`): {np.mean(torch_rss):.0f} MB.",
            "",
            f"Installed size: edge environment {env['edge_mb']:.0f} MB, the pipeline's "
            f"{env['full_mb']:.0f} MB ({env['edge_mb'] / env['full_mb']:.3f}).",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/wfde5-uk.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--workdir", help="kept; seeds whose registry is there are not rerun")
    ap.add_argument("--name")
    a = ap.parse_args()
    import yaml

    work = Path(a.workdir or tempfile.mkdtemp(prefix="wxc-edge-bench-"))
    model = yaml.safe_load((REPO / a.config).read_text())["name"]
    if not all((work / f"seed{s}" / "registry").is_dir() for s in range(a.seeds)):
        compression.run(a.config, a.seeds, a.sets, str(work))
    venv = work / "edge-env" / "venv"
    if not venv.exists():
        edge_env(work / "edge-env")
    seeds = []
    for s in range(a.seeds):
        (work / f"measure{s}").mkdir(exist_ok=True)
        seeds.append(
            measure_registry(
                str(work / f"seed{s}" / "registry"), model, str(work / "store.zarr"),
                work / f"measure{s}", a.calls, venv,
            )
        )  # fmt: skip
    res = {
        "seeds": seeds,
        "env": {"edge_mb": du_mb(venv), "full_mb": du_mb(Path(sys.prefix))},
        "machine": machine(),
        "calls": a.calls,
        "config": a.config,
        "overrides": a.sets,
    }
    cmd = "python -m benchmarks.edge " + " ".join(sys.argv[1:])
    body = report(res, cmd)
    print(body)
    print(write_report(a.name or f"edge-{model}", f"The edge runtime: {model}", body, res))


if __name__ == "__main__":
    main()
