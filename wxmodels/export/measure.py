"""What running a model costs a device, measured in a process of its own: peak resident
memory (load and one forecast step), load time and one step's time, with the edge runtime's
session options.

    python -m wxmodels.export.measure MODEL.onnx|MODEL.ort   ->  one line of JSON

The process imports what ``wxc-edge`` imports and nothing else, so its peak is what a device
running ``wxc-edge predict`` needs (the interpreter, NumPy and onnxruntime included).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["measure", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """This process's peak resident memory: ``VmHWM`` of ``/proc/self/status`` (Linux), which
    is this program's alone; ``ru_maxrss`` carries over, across ``exec``, the peak of the
    process that forked it (a parent holding torch makes every child look that big)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(path: str) -> dict[str, float]:
    import numpy as np

    from wxmodels.export.runtime import OrtForecaster

    t = time.perf_counter()
    runner = OrtForecaster(path, threads=1, spinning=False)
    load = time.perf_counter() - t
    h, w = runner.io.shape if runner.io else (1, 1)
    nv = len(runner.variables or [0])
    rng = np.random.default_rng(0)
    state = rng.normal(size=(1, runner.history, nv, h, w)).astype(np.float32)
    tm = np.array([480_000.0], np.float32)  # hours since 1970: 2024-10
    t = time.perf_counter()
    runner(state, tm)
    step = time.perf_counter() - t
    return {
        "peak_rss_mb": peak_rss_mb(),
        "load_ms": load * 1e3,
        "first_step_ms": step * 1e3,
    }


def measure(path: str | Path, python: str | None = None, timeout: float = 300.0) -> dict:
    """Run :func:`_child` on ``path`` in a new process (``python``: another environment's
    interpreter, e.g. one with only the edge runtime installed)."""
    r = subprocess.run(
        [python or sys.executable, "-m", "wxmodels.export.measure", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        raise RuntimeError(f"measuring {path} failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout)


if __name__ == "__main__":
    sys.stdout.write(json.dumps(_child(sys.argv[1])) + "\n")
