"""What a replay's timeline says: per-tick rows, the targets' figures, a markdown report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from wxmodels.replay.records import LiveScores, Timeline

__all__ = ["lead_table", "markdown", "md_table", "relative_rmse", "summary", "timeline_rows"]

MODELS = ("teacher", "edge", "hpc")


def _rmse(live: LiveScores, model: str) -> dict[tuple[str, str], float]:
    card = live.scores.get(model, {}).get("rmse", {})
    return {(v, lead): x for v, by in card.items() for lead, x in by.items() if x is not None}


def relative_rmse(live: LiveScores | None, model: str) -> float | None:
    """Mean over variables and leads of RMSE / the climatology's RMSE (unitless)."""
    if live is None or not live.n_inits:
        return None
    m, c = _rmse(live, model), _rmse(live, "climatology")
    r = [m[k] / c[k] for k in m if c.get(k)]
    return float(np.mean(r)) if r else None


def timeline_rows(tl: Timeline) -> list[dict[str, Any]]:
    """One row per tick (the Prefect table artifact and the report's table)."""
    rows = []
    for t in tl.ticks:
        live, rt = t.live, t.retrain
        events = []
        if rt is not None:
            events.append(f"retrain {rt.teacher_id[:8]}")
            if rt.refused:
                events.append("teacher refused: " + "; ".join(rt.refused))
            for p in rt.promotions:
                if p["moved"]:
                    events.append(f"{p['version']} -> {','.join(p['moved'])}")
        best = None
        if live is not None and live.n_inits:
            base = {
                b: r
                for b in live.scores
                if b not in live.models and (r := relative_rmse(live, b)) is not None
            }
            best = min(base, key=base.__getitem__) if base else None
        row = {
            "tick": t.time[:10] if t.time.endswith("00:00:00") else t.time,
            "appended": t.appended,
            "revised": t.revised,
            "store_steps": t.store.n_time,
            "store_mib": round(t.store.bytes / 2**20, 2),
            **{
                f"{k}_s": round(t.wall_s.get(k, 0.0), 1)
                for k in ("ingest", "score", "train", "cvp")
            },
            **{f"live_{a}": (live.models.get(a, "") if live else "") for a in MODELS},
            "inits": live.n_inits if live else 0,
            **{f"{a}_rel": _round(relative_rmse(live, a)) for a in MODELS},
            "best_baseline": best or "",
            "best_baseline_rel": _round(relative_rmse(live, best)) if best else None,
            "events": "; ".join(events),
        }
        rows.append(row)
    return rows


def md_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of ``rows`` (dicts with the same keys)."""
    if not rows:
        return ""
    keys = list(rows[0])

    def cell(x: Any) -> str:
        return "" if x is None else str(x).replace("|", "/")

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def lead_table(tl: Timeline) -> pd.DataFrame:
    """Out-of-sample RMSE per model, variable and lead, averaged over the scored ticks
    (each tick weighted by its inits)."""
    recs = []
    for t in tl.ticks:
        if t.live is None or not t.live.n_inits:
            continue
        for model in t.live.scores:
            if model.endswith("-previous"):
                continue
            for (v, lead), x in _rmse(t.live, model).items():
                recs.append((model, v, float(lead), x * x, t.live.n_inits))
    if not recs:
        return pd.DataFrame()
    df = pd.DataFrame(recs, columns=["model", "variable", "lead_h", "mse", "n"])
    df["w"] = df["mse"] * df["n"]
    g = df.groupby(["variable", "lead_h", "model"])[["w", "n"]].sum()
    return np.sqrt(g["w"] / g["n"]).unstack("model")


def summary(tl: Timeline) -> dict[str, Any]:
    """The figures the replay's targets are about."""
    ticks = tl.ticks
    out: dict[str, Any] = {"ticks": len(ticks)}
    if not ticks:
        return out
    t0 = pd.Timestamp(ticks[0].time)
    ingest = [(pd.Timestamp(t.time), t.wall_s.get("ingest", 0.0)) for t in ticks[1:]]
    if ingest:
        first = [w for tt, w in ingest if tt <= t0 + pd.DateOffset(years=1)]
        last_t = pd.Timestamp(ticks[-1].time)
        last = [w for tt, w in ingest if tt > last_t - pd.DateOffset(years=1)]
        out["ingest_mean_s_first_year"] = float(np.mean(first))
        out["ingest_mean_s_last_year"] = float(np.mean(last))
        out["ingest_ratio_last_first"] = float(np.mean(last) / np.mean(first))
        out["ingest_median_ratio_last_first"] = float(np.median(last) / np.median(first))
        out["ingest_min_ratio_last_first"] = float(np.min(last) / np.min(first))
    rts = [(t.time, t.retrain) for t in ticks if t.retrain is not None]
    out["retrains"] = [
        {
            "tick": tt,
            "train_inits": r.train_inits,
            "train_wall_s": round(r.train_wall_s, 1),
            "cvp_wall_s": round(r.cvp_wall_s, 1),
            "teacher_promoted": r.teacher_promoted,
            "refused": r.refused,
        }
        for tt, r in rts
    ]
    pts = [(r.train_inits, r.train_wall_s) for _, r in rts if r.train_inits]
    if len(pts) >= 3:
        x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        out["retrain_wall_vs_samples_slope"] = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) else None
    out["refusals"] = [tt for tt, r in rts if r.refused]
    # out of sample: edge against teacher per tick, models against baselines per lead
    ratios: list[dict[str, float]] = []
    for t in ticks:
        if t.live is None or not t.live.n_inits:
            continue
        e, te = _rmse(t.live, "edge"), _rmse(t.live, "teacher")
        r = [e[k] / te[k] for k in e if te.get(k)]
        if r:
            ratios.append({"max": max(r), "mean": float(np.mean(r))})
    out["edge_vs_teacher"] = {
        "ticks": len(ratios),
        "within_2pct_every_lead": sum(r["max"] <= 1.02 for r in ratios),
        "within_2pct_mean": sum(r["mean"] <= 1.02 for r in ratios),
        "worst": max((r["max"] for r in ratios), default=None),
        "mean": float(np.mean([r["mean"] for r in ratios])) if ratios else None,
    }
    lt = lead_table(tl)
    if not lt.empty:
        base = [c for c in lt.columns if c not in MODELS]
        beats = {}
        for m in MODELS:
            if m in lt.columns:
                beats[m] = {b: bool((lt[m] < lt[b]).all()) for b in base if lt[b].notna().all()}
        out["beats_every_baseline_at_every_lead"] = beats
    # every alias move judged on the next period: was the new version better than the old?
    moves = []
    for t in ticks:
        if t.live is None or not t.live.n_inits:
            continue
        for label in t.live.models:
            if label.endswith("-previous"):
                a = label[: -len("-previous")]
                new, old = _rmse(t.live, a), _rmse(t.live, label)
                r = [new[k] / old[k] for k in new if old.get(k)]
                if r:
                    moves.append({"tick": t.time, "alias": a, "ratio": float(np.mean(r))})
    out["alias_moves_next_period"] = moves
    return out


def markdown(tl: Timeline) -> str:
    """The timeline as a markdown report (also the Prefect artifact)."""
    s = summary(tl)
    rp = tl.replay
    lines = [
        f"# Replay of {tl.name}: {rp['start'][:10]} .. {rp['end'][:10]}",
        "",
        f"Ingest every {rp['ingest_every']}, retrain every {rp['retrain_every']}, split as of "
        f"each tick: validation {rp['split']['val']}, test {rp['split']['test']}; revisions: "
        f"{rp['revisions'] or 'none'}. {s['ticks']} ticks.",
        "",
    ]
    if "ingest_ratio_last_first" in s:
        lines.append(
            f"- Ingest per tick: {s['ingest_mean_s_first_year']:.2f} s in the first year, "
            f"{s['ingest_mean_s_last_year']:.2f} s in the last (ratio "
            f"{s['ingest_ratio_last_first']:.2f}; of the medians "
            f"{s['ingest_median_ratio_last_first']:.2f}, of the fastest "
            f"{s['ingest_min_ratio_last_first']:.2f})."
        )
    if s.get("retrain_wall_vs_samples_slope") is not None:
        lines.append(
            "- Retrain wall time against training samples (log-log slope): "
            f"{s['retrain_wall_vs_samples_slope']:.2f}."
        )
    ev = s.get("edge_vs_teacher", {})
    if ev.get("ticks"):
        lines.append(
            f"- Live edge vs live teacher, out of sample: within 2 % at every lead on "
            f"{ev['within_2pct_every_lead']}/{ev['ticks']} ticks, on the mean over leads on "
            f"{ev['within_2pct_mean']}/{ev['ticks']}; mean ratio {ev['mean']:.3f}, worst "
            f"{ev['worst']:.3f}."
        )
    lines.append(
        f"- Teachers refused by the gate: {len(s.get('refusals', []))}"
        + (f" ({', '.join(x[:10] for x in s['refusals'])})" if s.get("refusals") else "")
        + "."
    )
    if not s.get("refusals"):
        lines.append(
            "  No retrained teacher was refused in this replay: each was at least as good as the "
            "one it replaced on the tick's test window (the refusal path is exercised by "
            "`tests/integration/test_replay.py` with a degraded challenger)."
        )
    moves = s.get("alias_moves_next_period", [])
    if moves:
        better = sum(m["ratio"] <= 1.0 for m in moves)
        lines.append(
            f"- Alias moves judged on the next period (new version's RMSE / the replaced "
            f"one's, mean over variables and leads): {better} of {len(moves)} better; ratios "
            + ", ".join(f"{m['alias']} {m['tick'][:10]} {m['ratio']:.3f}" for m in moves)
            + "."
        )
    for m, by in s.get("beats_every_baseline_at_every_lead", {}).items():
        lost = [b for b, ok in by.items() if not ok]
        lines.append(
            f"- {m} beats every baseline at every lead (over the ticks): "
            + ("yes" if not lost else f"no (not {', '.join(lost)})")
        )
    lt = lead_table(tl)
    if not lt.empty:
        table = [
            {"variable": v, "lead_h": f"{lead:g}", **{m: f"{x:.4g}" for m, x in row.items()}}
            for (v, lead), row in lt.iterrows()
        ]
        lines += ["", "## Out-of-sample RMSE, over all ticks", "", md_table(table)]
    rows = timeline_rows(tl)
    if rows:
        lines += ["", "## Timeline", "", md_table(rows)]
    return "\n".join(lines) + "\n"
