"""Plots people can read: skill against lead time, per variable, for every model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import xarray as xr

__all__ = ["plot_rmse_vs_lead"]

_BASELINE_STYLE = {"persistence": ("k", "--"), "climatology": ("0.5", ":")}


def plot_rmse_vs_lead(sc: xr.DataArray, path: str | Path, metric: str = "rmse") -> Path:
    """One panel per variable: ``metric`` against lead time for every model in the scorecard."""
    variables = [str(v) for v in sc["variable"].values]
    n = len(variables)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    leads = sc["lead_time"].values
    for ax, v in zip(axes.flat, variables, strict=False):
        for m in sc["model"].values:
            y = sc.sel(model=m, metric=metric, variable=v).values
            color, ls = _BASELINE_STYLE.get(str(m), (None, "-"))
            lw = 2.5 if str(m) == "teacher" else 1.2
            ax.plot(leads, y, ls, color=color, lw=lw, marker="o", ms=3, label=str(m))
        ax.set_title(v, fontsize=9)
        ax.set_xlabel("lead time (h)")
        ax.set_ylabel(metric.upper())
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
