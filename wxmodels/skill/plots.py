"""Plots people can read: skill against lead time per variable, and a scorecard heat map."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["plot_heatmap", "plot_pareto", "plot_skill_vs_lead"]

_BASELINE_STYLE = {
    "persistence": ("k", "--"),
    "climatology": ("0.5", ":"),
    "linear": ("tab:brown", "-."),
}


def rmse_bounds(
    errors: xr.Dataset, model: str, variable: str, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap bounds of a model's RMSE per lead (blocks as the gates choose them)."""
    from wxmodels.skill.significance import block_length, resample_indices

    e = errors[variable].sel(model=model).values  # (N, L)
    lo, hi = [], []
    for j in range(e.shape[1]):
        x = e[:, j][np.isfinite(e[:, j])]
        if len(x) < 2:
            lo.append(np.nan)
            hi.append(np.nan)
            continue
        idx = resample_indices(len(x), block_length(x), 500)
        r = np.sqrt(x[idx].mean(axis=1))
        a, b = np.quantile(r, [1 - confidence, confidence])
        lo.append(a)
        hi.append(b)
    return np.asarray(lo), np.asarray(hi)


def plot_skill_vs_lead(
    sc: xr.DataArray, path: str | Path, metric: str = "rmse", errors: xr.Dataset | None = None
) -> Path:
    """One panel per variable: ``metric`` against lead time for every model in the scorecard;
    with ``errors`` (per-init MSEs), RMSE bands at the bootstrap bounds."""
    variables = [
        str(v)
        for v in sc["variable"].values
        if np.isfinite(sc.sel(metric=metric, variable=v)).any()
    ]
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
            line = ax.plot(leads, y, ls, color=color, lw=lw, marker="o", ms=3, label=str(m))
            if (
                metric == "rmse"
                and errors is not None
                and str(m) in errors["model"].values
                and v in errors
            ):
                lo, hi = rmse_bounds(errors, str(m), v)
                ax.fill_between(leads, lo, hi, color=line[0].get_color(), alpha=0.15, lw=0)
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


def plot_heatmap(
    sc: xr.DataArray, candidates: list[str], path: str | Path, teacher: str = "teacher"
) -> Path:
    """Candidates (rows) x variable/lead (columns): RMSE change vs the teacher in percent
    (blue better, red worse), the numbers written in the cells."""
    rmse = sc.sel(metric="rmse")
    variables = [str(v) for v in rmse["variable"].values]
    leads = [float(x) for x in rmse["lead_time"].values]
    cols = [(v, lead) for v in variables for lead in leads]
    data = np.array(
        [
            [
                100
                * (
                    float(rmse.sel(model=c, variable=v, lead_time=lead))
                    / float(rmse.sel(model=teacher, variable=v, lead_time=lead))
                    - 1
                )
                for v, lead in cols
            ]
            for c in candidates
        ]
    )
    lim = max(5.0, float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 5.0)
    lim = min(lim, 50.0)
    fig, ax = plt.subplots(figsize=(max(6, 0.42 * len(cols)), 0.5 * len(candidates) + 2))
    im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(len(candidates)):
        for j in range(len(cols)):
            if np.isfinite(data[i, j]):
                ax.text(j, i, f"{data[i, j]:+.0f}", ha="center", va="center", fontsize=6)
    ax.set_yticks(range(len(candidates)), candidates, fontsize=8)
    ax.set_xticks(range(len(cols)), [f"{lead:g}h" for _, lead in cols], fontsize=6)
    for k, v in enumerate(variables):
        ax.text(
            k * len(leads) + (len(leads) - 1) / 2,
            -0.8,
            v.replace("_", " "),
            ha="center",
            fontsize=6,
            rotation=0,
        )
    fig.colorbar(im, ax=ax, label="RMSE vs teacher (%)", shrink=0.8)
    ax.set_title("scorecard: RMSE change against the teacher", fontsize=9, pad=18)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(
    rows: list[dict], front: list[str], path: str | Path, teacher_size: float | None = None
) -> Path:
    """Deployable size (log) against mean RMSE relative to the teacher, one point per
    candidate (filled: passes the gates), the Pareto front joined by a line."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in rows:
        x, y = r["pack_bytes"], r["relative_rmse"]
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        face = "tab:blue" if r["passed"] else "none"
        ax.scatter(x, y, s=36, facecolors=face, edgecolors="tab:blue", zorder=3)
        ax.annotate(r["name"], (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    pts = sorted((r["pack_bytes"], r["relative_rmse"]) for r in rows if r["name"] in front)
    if pts:
        ax.plot(*zip(*pts, strict=True), "-", color="tab:orange", lw=1.5, label="Pareto front")
    if teacher_size:
        ax.scatter([teacher_size], [1.0], marker="*", s=120, color="k", label="teacher", zorder=4)
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("deployable size (bytes)")
    ax.set_ylabel("mean RMSE / teacher RMSE")
    ax.set_title("compression matrix: size against skill (filled: passes the gates)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
