"""The machine-readable summary of a cycle (``wxc run --report``)."""

from __future__ import annotations

from typing import Any

__all__ = ["cycle_report"]


def cycle_report(
    name: str,
    ingest: dict[str, Any],
    teacher: dict[str, Any],
    evaluation: dict[str, Any],
    promoted: list[dict[str, Any]],
    wall_s: dict[str, float],
) -> dict[str, Any]:
    """Flatten the stage records into the report's documented shape.

    Keys: ``teacher.rmse[var][lead_h]``, ``baselines.<name>.rmse[var][lead_h]``,
    ``candidates[] = {name, method, size_bytes, latency_ms_batch1, rmse, acc, gate}``,
    ``teacher_size_bytes``, ``teacher_latency_ms_batch1``, ``promoted[]``, ``wall_s``.
    """
    sc = evaluation["scorecard"]
    t = evaluation["teacher"]
    return {
        "name": name,
        "store": {
            k: ingest.get(k)
            for k in ("store", "version", "start", "end", "appended", "skipped", "problems")
        },
        "test_window": evaluation["test_window"],
        "teacher": {
            "id": teacher["id"],
            "parent": teacher.get("parent"),
            "init": teacher.get("init"),
            "params": teacher["params"],
            "macs": teacher.get("macs"),
            "rmse": sc["teacher"]["rmse"],
            "acc": sc["teacher"]["acc"],
            "bias": sc["teacher"]["bias"],
        },
        "incumbent": evaluation.get("incumbent"),
        "teacher_size_bytes": t["size_bytes"],
        "teacher_latency_ms_batch1": t["latency_ms_batch1"],
        "teacher_latency_ms_batch16": t["latency_ms_batch16"],
        "baselines": {
            b: {"rmse": sc[b]["rmse"], "acc": sc[b]["acc"]}
            for b in ("persistence", "climatology", "linear")
            if b in sc
        },
        "candidates": [
            {
                "name": c["name"],
                "method": c["method"],
                "recipe": c["label"],
                "params": c["params"],
                "macs": c.get("macs"),
                "size_bytes": c["size_bytes"],
                "size_ratio": t["size_bytes"] / c["size_bytes"],
                "latency_ms_batch1": c["latency_ms_batch1"],
                "latency_ms_batch16": c["latency_ms_batch16"],
                "speedup_batch1": (
                    t["latency_ms_batch1"] / c["latency_ms_batch1"]
                    if c["latency_ms_batch1"] and t["latency_ms_batch1"]
                    else None
                ),
                "rmse": sc[c["name"]]["rmse"],
                "acc": sc[c["name"]]["acc"],
                "parity": c["parity"],
                "relative_rmse": c.get("relative_rmse"),
                "pareto": c.get("pareto"),
                "gate": c["gate"],
            }
            for c in evaluation["candidates"]
        ],
        "failures": evaluation.get("failures", []),
        "promoted": [
            {
                "model": p["model"],
                "version": p["version"],
                "aliases": p["aliases"],
                "cell": p["cell"],
            }
            for p in promoted
        ],
        "evaluation_dir": evaluation["dir"],
        "wall_s": wall_s,
    }
