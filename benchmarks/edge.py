"""What a deployer gets at the edge: the promoted profiles against the teacher, with the
session options fixed and named (issue: edge runtime; targets: >= 50x smaller, >= 10x faster
at batch 1, RMSE within 2 %, peak RSS <= 1/5 of the teacher's, environment <= 1/10).

1. One cycle (``wxc run --config C``, seed 0), or an existing registry (``--registry R
   --model NAME``).
2. For ``teacher``, ``edge`` and ``hpc``: file sizes (``.onnx``, ``.ort``), batch-1 latency and
   batch-16 throughput in onnxruntime with one intra-op thread, sequential execution and no
   spinning (the same options for every model), beside the per-call floor of an empty graph
   (an Identity on the same input) under those options.
3. Peak resident memory of a whole forecast process: ``wxc-edge predict`` (load, one forecast
   to the longest lead, write) for each profile, and the teacher as the pipeline runs it
   (``wxc predict --runtime torch``); read from the process's own ``VmHWM``.
4. The installed size of an environment with only ``wxcompress[edge]`` against this one.

Run: ``python -m benchmarks.edge --config configs/wfde5-uk.yaml``
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


def timings(path: Path, batch: int, calls: int) -> list[float]:
    """Seconds per call of the model at ``path`` on random states of its shape."""
    from wxmodels.export.runtime import OrtForecaster

    m = OrtForecaster(path, threads=1, spinning=False)
    h, w = m.io.shape if m.io else (1, 1)
    rng = np.random.default_rng(0)
    state = rng.normal(size=(batch, m.history, len(m.variables or [0]), h, w)).astype(np.float32)
    feeds = m.feeds(state, np.full(batch, 480_000.0, np.float32))
    for _ in range(20):
        m.session.run(None, feeds)
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        m.session.run(None, feeds)
        out.append(time.perf_counter() - t)
    return out


def floor(shape: tuple[int, ...], calls: int) -> list[float]:
    """Per-call time of an empty graph (Identity) on ``shape`` under the same options."""
    import onnx
    from onnx import TensorProto, helper

    from wxmodels.export.runtime import ort_session

    g = helper.make_graph(
        [helper.make_node("Identity", ["state"], ["next"])],
        "empty",
        [helper.make_tensor_value_info("state", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("next", TensorProto.FLOAT, list(shape))],
    )
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "empty.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
        s = ort_session(p, spinning=False)
        x = {"state": np.zeros(shape, np.float32)}
        for _ in range(20):
            s.run(None, x)
        out = []
        for _ in range(calls):
            t = time.perf_counter()
            s.run(None, x)
            out.append(time.perf_counter() - t)
    return out


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


def measure_registry(registry: str, model: str, store: str, work: Path, calls: int) -> dict:
    from wxmodels.registry import Registry

    reg = Registry(registry)
    aliases = reg.aliases(model)
    venv = edge_env(work / "edge-env")
    edge_py = str(venv / "bin" / "python")
    out: dict[str, Any] = {"profiles": {}, "env": {}}
    out["env"] = {"edge_mb": du_mb(venv), "full_mb": du_mb(Path(sys.prefix))}
    first: dict[str, Any] | None = None
    for prof in PROFILES:
        if prof not in aliases:
            continue
        ref = f"{model}@{aliases[prof]}"
        d = work / "pulled" / prof
        if not d.exists():
            subprocess.run(
                [str(venv / "bin" / "wxc-edge"), "pull", registry, ref, str(d)],
                check=True,
                cwd=work,
            )
        man = json.loads((d / "manifest.json").read_text())
        info = json.loads(
            subprocess.run(
                [str(venv / "bin" / "wxc-edge"), "info", str(d)],
                check=True, capture_output=True, text=True, cwd=work,
            ).stdout
        )  # fmt: skip
        onnx_path = d / "model.onnx" if (d / "model.onnx").exists() else d / "model.ort"
        b1 = timings(onnx_path, 1, calls)
        b1_ort = timings(d / "model.ort", 1, calls) if (d / "model.ort").exists() else None
        b16 = timings(onnx_path, 16, max(calls // 8, 20))
        if first is None:
            shape = (1, info["history"], len(info["variables"]), *info["grid"])
            out["floor"] = _stats(floor(shape, calls))
            first = info
        an = work / "analyses.npz"
        if not an.exists():
            _analyses(store, info, an)
        leads = "1,6,24" if info["step_hours"] <= 1 else f"{int(info['step_hours'])}"
        rss = peak_of(
            edge_py,
            "wxmodels.edge",
            [
                "predict",
                str(d),
                "--input",
                str(an),
                "--leads",
                leads,
                "--out",
                str(work / f"{prof}.npz"),
            ],
            work,
        )
        out["profiles"][prof] = {
            "version": man["version"],
            "recipe": man.get("recipe_label", "teacher"),
            "onnx_bytes": man["files"]["model.onnx"]["size"],
            "ort_bytes": man["files"].get("model.ort", {}).get("size"),
            "batch1": _stats(b1),
            "batch1_ort": _stats(b1_ort) if b1_ort else None,
            "pack_bytes": man["files"].get("model.wxpack", {}).get("size"),
            "batch16_per_init_ms": statistics.median(b16) * 1e3 / 16,
            "edge_peak_rss_mb": rss,
            "scorecard": man.get("scorecard", {}),
            "cell": man.get("cell"),
        }
    # the teacher as the pipeline runs it
    t = out["profiles"].get("teacher")
    if t is not None:
        leads = "1,6,24" if first and first["step_hours"] <= 1 else str(int(first["step_hours"]))  # type: ignore[index]
        t["torch_peak_rss_mb"] = peak_of(
            sys.executable,
            "flows.cli",
            ["predict", "--model", f"{model}@{t['version']}", "--registry", registry,
             "--start", _last_time(store), "--leads", leads, "--runtime", "torch",
             "--out", str(work / "teacher-torch.nc"), "--overwrite"],
            REPO,
        )  # fmt: skip
    return out


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


def _rel_rmse(card: dict, key: str) -> dict[str, float]:
    """Mean over variables of RMSE(model) / RMSE(teacher) - 1, per lead."""
    m, t = card.get(key, {}).get("rmse", {}), card.get("teacher", {}).get("rmse", {})
    leads = sorted({ld for v in t.values() for ld in v}, key=float)
    return {
        ld: float(np.mean([m[v][ld] / t[v][ld] - 1 for v in t if v in m and t[v].get(ld)]))
        for ld in leads
    }


def report(res: dict, cmd: str) -> str:
    p = res["profiles"]
    t = p["teacher"]
    fl = res["floor"]["median_ms"]
    rows = [
        "| profile | recipe | .onnx bytes | smaller | packed bytes | smaller | .ort bytes "
        "| batch 1 .onnx median (p10-p90) ms | faster | batch 1 .ort (batch-1 form) ms | faster "
        "| batch 16 ms/init | peak RSS (wxc-edge) MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, x in p.items():
        b1, bo = x["batch1"], x.get("batch1_ort") or {"median_ms": float("nan")}
        pack = x.get("pack_bytes") or x["onnx_bytes"]
        rows.append(
            f"| {name} | `{x['recipe']}` | {x['onnx_bytes']} | "
            f"{t['onnx_bytes'] / x['onnx_bytes']:.1f}x | {pack} | "
            f"{t['onnx_bytes'] / pack:.1f}x | {x['ort_bytes']} | "
            f"{b1['median_ms']:.3f} ({b1['p10_ms']:.3f}-{b1['p90_ms']:.3f}) | "
            f"{t['batch1']['median_ms'] / b1['median_ms']:.1f}x | {bo['median_ms']:.3f} | "
            f"{t['batch1']['median_ms'] / bo['median_ms']:.1f}x | "
            f"{x['batch16_per_init_ms']:.3f} | {x['edge_peak_rss_mb']:.0f} |"
        )
    skill = [
        "| profile | " + " | ".join(f"{ld} h" for ld in _rel_rmse(t["scorecard"], "teacher")) + " |"
    ]
    skill.append("|---|" + "---|" * (len(skill[0].split("|")) - 3))
    for name, x in p.items():
        if name == "teacher":
            continue
        rel = _rel_rmse(x["scorecard"], x["cell"] or name)
        skill.append(f"| {name} | " + " | ".join(f"{100 * r:+.1f} %" for r in rel.values()) + " |")
    env = res["env"]
    return "\n".join(
        [
            f"Command: `{cmd}`; machine: {res['machine']}.",
            "",
            "Session options, the same for every model: onnxruntime CPU, 1 intra-op thread, "
            "sequential, no spinning, full graph optimisation; random states of the model's "
            f"shape; {res['calls']} timed calls after 20 warm-up calls.",
            "",
            *rows,
            "",
            f"Floor (an empty graph on the same input, same options): {fl:.3f} ms per call. "
            "'smaller' and 'faster' are against the teacher's fp32 `.onnx` (size, batch-1 "
            "median); the packed size is `model.wxpack`, the transfer form.",
            "",
            "RMSE relative to the teacher (mean over variables; test window of the cycle):",
            "",
            *skill,
            "",
            "Peak resident memory of a whole forecast process (VmHWM): `wxc-edge predict` in an "
            f"environment with only the edge runtime; the teacher through the pipeline "
            f"(`wxc predict --runtime torch`): {t.get('torch_peak_rss_mb', float('nan')):.0f} MB "
            f"(edge profile / that: "
            f"{p.get('edge', t)['edge_peak_rss_mb'] / t.get('torch_peak_rss_mb', float('nan')):.2f}).",
            "",
            f"Installed size: edge environment {env['edge_mb']:.0f} MB, the pipeline's "
            f"{env['full_mb']:.0f} MB ({env['edge_mb'] / env['full_mb']:.3f}).",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/wfde5-uk.yaml")
    ap.add_argument("--registry", help="an existing registry (skips the cycle)")
    ap.add_argument("--model", help="the model's name in --registry")
    ap.add_argument("--store", help="the store the model was trained on (with --registry)")
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--workdir")
    ap.add_argument("--name")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="wxc-edge-bench-"))
    if a.registry:
        registry, model, store = a.registry, a.model, a.store
    else:
        import yaml

        compression.run(a.config, 1, [], str(work))
        registry, store = str(work / "seed0" / "registry"), str(work / "store.zarr")
        model = yaml.safe_load((REPO / a.config).read_text())["name"]
    res = measure_registry(registry, model, store, work, a.calls)
    res.update({"machine": machine(), "calls": a.calls, "config": a.config})
    cmd = "python -m benchmarks.edge " + " ".join(sys.argv[1:])
    body = report(res, cmd)
    print(body)
    name = a.name or f"edge-{model}"
    print(write_report(name, f"The edge runtime: {model}", body, res))


if __name__ == "__main__":
    main()
