"""Helpers shared by the benchmarks: timing, machine description, report writing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPORTS = Path(__file__).resolve().parent / "reports"
REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    d = Path(os.environ.get("WXC_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
    return d if (d / "wfde5_uk_2017-01").is_dir() else None


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def write_report(name: str, title: str, body: str, data: dict[str, Any]) -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))
    path = REPORTS / f"{name}.md"
    path.write_text(f"# {title}\n\n{body}\n")
    return path
