"""The skill / size / speed front of a compression matrix.

A candidate is on the Pareto front when no other is at least as good on every objective and
better on one. Objectives are all minimised: deployable size (bytes), onnxruntime latency at
batch 1 and the mean over variables and leads of RMSE relative to the teacher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["mean_relative_rmse", "pareto_front"]


def mean_relative_rmse(scorecard: Mapping[str, Any], model: str, teacher: str = "teacher") -> float:
    """Mean over variables and leads of ``RMSE(model) / RMSE(teacher)`` (scorecard JSON);
    infinite when any score is missing or not finite."""
    rel = []
    for v, leads in scorecard[model]["rmse"].items():
        for lead, x in leads.items():
            t = scorecard[teacher]["rmse"][v][lead]
            if x is None or t is None or t == 0 or not np.isfinite(x):
                return float("inf")
            rel.append(x / t)
    return float(np.mean(rel)) if rel else float("inf")


def pareto_front(points: Mapping[str, Sequence[float]]) -> list[str]:
    """Names of the non-dominated points (every objective minimised), in input order.
    Points with a non-finite objective are never on the front."""
    names = [n for n, p in points.items() if np.all(np.isfinite(np.asarray(p, dtype=float)))]
    arr = {n: np.asarray(points[n], dtype=float) for n in names}
    front = []
    for n in names:
        a = arr[n]
        dominated = any(np.all(arr[m] <= a) and np.any(arr[m] < a) for m in names if m != n)
        if not dominated:
            front.append(n)
    return front
