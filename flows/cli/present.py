"""How the CLI shows stage results and the stack (tables and one-liners)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from flows.cli.common import err, out
from wxmodels.pipeline.present import candidate_rows
from wxmodels.pipeline.records import Evaluation, IncumbentVerdict

__all__ = ["gate_cell", "print_candidates", "print_report", "print_stack", "print_verdict"]


def print_candidates(ev: Evaluation) -> None:
    t = Table(title=f"candidates (test window {ev.test_window[0]} .. {ev.test_window[1]})")
    for col in ("cell", "recipe", "bytes", "ratio", "ms b1", "speedup", "gates"):
        t.add_column(col)
    for r in candidate_rows(ev):
        t.add_row(
            r["cell"],
            r["recipe"],
            str(r["bytes"]),
            f"{r['ratio']:.1f}",
            f"{r['ms_b1']:.3f}" if r["ms_b1"] else "-",
            f"{r['speedup']:.1f}" if r["speedup"] else "-",
            "-" if r["passed"] is None else gate_cell(r["passed"], r["reasons"]),
        )
    out.print(t)


def gate_cell(passed: bool, reasons: list[str]) -> str:
    if passed:
        return "[green]pass[/]"
    first = reasons[0] if reasons else ""
    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
    return f"[red]fail[/]: {first}{more}"


def print_verdict(inc: IncumbentVerdict | dict[str, Any] | None) -> None:
    """The new teacher against the registry's current one."""
    if not inc:
        return
    inc = IncumbentVerdict.model_validate(inc)
    v = inc.verdict
    ratio = f"mean RMSE ratio {v.mean_ratio:.4f}" if v.mean_ratio is not None else ""
    if v.promote:
        out.print(f"new teacher vs current {inc.version}: {ratio} (may replace it)")
    else:
        err.print(
            f"[yellow]new teacher NOT promoted[/]: worse than the current teacher "
            f"{inc.version}: " + "; ".join(v.reasons) + ". Production is unchanged."
        )


def print_report(rep: dict[str, Any]) -> None:
    """The cycle report (:func:`wxmodels.pipeline.present.cycle_report`)."""
    t = Table(title=f"{rep['name']}: candidates")
    for col in ("cell", "recipe", "size ratio", "speedup b1"):
        t.add_column(col, no_wrap=True)
    t.add_column("gates", overflow="fold")
    for c in rep["candidates"]:
        t.add_row(
            c["name"],
            c["recipe"],
            f"{c['size_ratio']:.1f}x",
            f"{c['speedup_batch1']:.1f}x" if c["speedup_batch1"] else "-",
            gate_cell(c["gate"]["passed"], c["gate"]["reasons"]),
        )
    out.print(t)
    for f in rep["failures"]:
        err.print(f"[red]cell {f['name']} failed[/]: {f['error']}")
    print_verdict(rep.get("incumbent"))
    for p in rep["promoted"]:
        out.print(
            f"promoted {p['model']}@{p['version']} ({p['cell']}) as {', '.join(p['aliases'])}"
        )
    out.print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in rep["wall_s"].items()))


def print_stack(st: dict[str, Any]) -> None:
    out.print(
        f"Prefect UI {st['ui']} (API {st['url']}): {'healthy' if st['healthy'] else 'not running'}"
    )
    for name, svc in sorted(st.get("services", {}).items()):
        state = "healthy" if svc.get("healthy") else ("running" if svc.get("alive") else "stopped")
        port = f" port {svc['port']}" if "port" in svc else ""
        out.print(f"  {name:<16} {state:<8} pid {svc.get('pid')}{port}  log {svc.get('log', '-')}")
