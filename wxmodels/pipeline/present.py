"""How stage records are shown: one presenter for the Prefect table artifacts, the CLI tables
and the cycle's JSON report (``wxc run --report``), so that the three say the same thing."""

from __future__ import annotations

from typing import Any

from wxmodels.pipeline.records import Evaluation, MatrixResult, Promotion, TeacherRecord

__all__ = ["candidate_rows", "cycle_report", "gate_text", "matrix_rows", "scorecard_rows"]

BASELINES = ("persistence", "climatology", "linear", "cell_linear", "ridge")


def gate_text(passed: bool, reasons: list[str], n: int = 3) -> str:
    """``pass`` or ``fail: <the first n reasons>``."""
    return "pass" if passed else "fail: " + "; ".join(reasons[:n])


def matrix_rows(matrix: MatrixResult) -> list[dict[str, Any]]:
    """The compression matrix: one row per cell, failed cells with their error."""
    rows = [
        {
            "cell": c.name,
            "recipe": c.label,
            "params": c.params,
            "pack_bytes": c.pack_bytes,
            "sparsity": round(c.sparsity, 3),
            "parity": c.parity,
            "wall_s": round(c.wall_s, 1),
            "error": "",
        }
        for c in matrix.cells
    ]
    empty = dict.fromkeys(("params", "pack_bytes", "sparsity", "parity", "wall_s"))
    return rows + [
        {"cell": n, "recipe": "", **empty, "error": e} for n, e in matrix.failures.items()
    ]


def candidate_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """The candidates against the teacher: size, ratio, batch-1 latency, speedup, gate."""
    t = evaluation.teacher
    rows = [
        {
            "cell": "teacher",
            "recipe": "-",
            "bytes": t.onnx_bytes,
            "ratio": 1.0,
            "ms_b1": t.latency_ms_batch1,
            "speedup": 1.0,
            "passed": None,
            "reasons": [],
        }
    ]
    for c in evaluation.candidates:
        lat, tl = c.latency_ms_batch1, t.latency_ms_batch1
        rows.append(
            {
                "cell": c.name,
                "recipe": c.label,
                "bytes": c.pack_bytes,
                "ratio": t.onnx_bytes / c.pack_bytes,
                "ms_b1": lat,
                "speedup": tl / lat if lat and tl else None,
                "passed": c.gate.passed,
                "reasons": c.gate.reasons,
            }
        )
    return rows


def scorecard_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """Every model (teacher, candidates, current teacher, baselines) with its RMSE per
    variable and lead, size, latency, Pareto membership and gate (the scorecard artifact)."""
    sc = evaluation.scorecard
    t = evaluation.teacher
    entries: list[tuple[str, str, int | None, float | None, Any]] = [
        ("teacher", "teacher", t.onnx_bytes, t.latency_ms_batch1, None)
    ]
    entries += [
        (c.name, c.label, c.pack_bytes, c.latency_ms_batch1, c.gate) for c in evaluation.candidates
    ]
    if "incumbent" in sc:
        entries.append(("incumbent", "current teacher", None, None, None))
    entries += [(b, "baseline", None, None, None) for b in BASELINES if b in sc]
    rows = []
    for name, label, size, lat, gate in entries:
        row: dict[str, Any] = {
            "model": name,
            "recipe": label,
            "bytes": size,
            "latency_ms_b1": None if lat is None else round(lat, 4),
        }
        for v, leads in sc[name]["rmse"].items():
            for lead, x in leads.items():
                row[f"rmse {v} {lead}h"] = None if x is None else round(x, 5)
        row["vs teacher (bounds)"] = _worst_interval(evaluation, name)
        row["pareto"] = "-" if gate is None else ("yes" if name in evaluation.pareto else "")
        row["gate"] = "-" if gate is None else gate_text(gate.passed, gate.reasons)
        rows.append(row)
    return rows


def _worst_interval(evaluation: Evaluation, name: str) -> str:
    """The candidate's relative RMSE against the teacher where it is worst, with its bootstrap
    bounds (``-`` for the teacher, the baselines, and gates on point values)."""
    cand = next((c for c in evaluation.candidates if c.name == name), None)
    if cand is None or not cand.intervals:
        return "-"
    v, lead, (est, lo, hi) = max(
        ((v, lead, x) for v, leads in cand.intervals.items() for lead, x in leads.items()),
        key=lambda t: t[2][0],
    )
    return f"{est:+.1%} [{lo:+.1%}, {hi:+.1%}] ({v} {lead}h)"


def cycle_report(
    name: str,
    ingest: Any,
    teacher: TeacherRecord,
    evaluation: Evaluation,
    promoted: list[Promotion],
    wall_s: dict[str, float],
) -> dict[str, Any]:
    """The cycle's machine-readable summary.

    Keys: ``teacher.rmse[var][lead_h]``, ``baselines.<name>.rmse[var][lead_h]``,
    ``candidates[] = {name, method, recipe, pack_bytes, size_ratio, latency_ms_batch1,
    speedup_batch1, rmse, acc, gate, ...}``, ``teacher_onnx_bytes``,
    ``teacher_latency_ms_batch1``, ``promoted[]``, ``wall_s``.
    """
    sc = evaluation.scorecard
    t = evaluation.teacher
    return {
        "name": name,
        "store": {
            k: getattr(ingest, k)
            for k in ("store", "version", "start", "end", "appended", "skipped", "problems")
        },
        "test_window": list(evaluation.test_window),
        "teacher": {
            "id": teacher.id,
            "parent": teacher.parent,
            "init": teacher.init,
            "params": teacher.params,
            "macs": teacher.macs,
            "rmse": sc["teacher"]["rmse"],
            "acc": sc["teacher"]["acc"],
            "bias": sc["teacher"]["bias"],
        },
        "incumbent": evaluation.incumbent.model_dump() if evaluation.incumbent else None,
        "teacher_onnx_bytes": t.onnx_bytes,
        "teacher_latency_ms_batch1": t.latency_ms_batch1,
        "teacher_latency_ms_batch16": t.latency_ms_batch16,
        "baselines": {
            b: {"rmse": sc[b]["rmse"], "acc": sc[b]["acc"]} for b in BASELINES if b in sc
        },
        "candidates": [
            {
                "name": c.name,
                "method": c.method,
                "recipe": c.label,
                "params": c.params,
                "macs": c.macs,
                "pack_bytes": c.pack_bytes,
                "size_ratio": t.onnx_bytes / c.pack_bytes,
                "latency_ms_batch1": c.latency_ms_batch1,
                "latency_ms_batch16": c.latency_ms_batch16,
                "speedup_batch1": (
                    t.latency_ms_batch1 / c.latency_ms_batch1
                    if c.latency_ms_batch1 and t.latency_ms_batch1
                    else None
                ),
                "rmse": sc[c.name]["rmse"],
                "acc": sc[c.name]["acc"],
                "parity": c.parity,
                "relative_rmse": c.relative_rmse,
                "pareto": c.pareto,
                "gate": c.gate.model_dump(),
                "intervals": c.intervals,
            }
            for c in evaluation.candidates
        ],
        "failures": [f.model_dump() for f in evaluation.failures],
        "promoted": [
            p.model_dump(include={"model", "version", "aliases", "cell"}) for p in promoted
        ],
        "evaluation_dir": evaluation.dir,
        "wall_s": wall_s,
    }
