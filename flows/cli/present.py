"""How the CLI shows stage results and the stack (tables and one-liners)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from flows.cli.common import err, out

__all__ = ["gate_cell", "print_candidates", "print_report", "print_stack", "print_verdict"]


def print_candidates(ev: dict[str, Any]) -> None:
    t = Table(title=f"candidates (test window {ev['test_window'][0]} .. {ev['test_window'][1]})")
    for col in ("cell", "recipe", "size (bytes)", "ratio", "ms b1", "speedup", "gates"):
        t.add_column(col)
    te = ev["teacher"]
    t.add_row(
        "teacher",
        "-",
        str(te["size_bytes"]),
        "1.0",
        f"{te['latency_ms_batch1']:.3f}" if te["latency_ms_batch1"] else "-",
        "1.0",
        "-",
    )
    for c in ev["candidates"]:
        lat = c["latency_ms_batch1"]
        t.add_row(
            c["name"],
            c["label"],
            str(c["size_bytes"]),
            f"{te['size_bytes'] / c['size_bytes']:.1f}",
            f"{lat:.3f}" if lat else "-",
            f"{te['latency_ms_batch1'] / lat:.1f}" if lat and te["latency_ms_batch1"] else "-",
            gate_cell(c["gate"]),
        )
    out.print(t)


def gate_cell(gate: dict[str, Any]) -> str:
    if gate["passed"]:
        return "[green]pass[/]"
    first = gate["reasons"][0] if gate["reasons"] else ""
    more = f" (+{len(gate['reasons']) - 1} more)" if len(gate["reasons"]) > 1 else ""
    return f"[red]fail[/]: {first}{more}"


def print_verdict(inc: dict[str, Any] | None) -> None:
    """The new teacher against the registry's current one."""
    if not inc:
        return
    v = inc["verdict"]
    ratio = f"mean RMSE ratio {v['mean_ratio']:.4f}" if v["mean_ratio"] is not None else ""
    if v["promote"]:
        out.print(f"new teacher vs current {inc['version']}: {ratio} (may replace it)")
    else:
        err.print(
            f"[yellow]new teacher NOT promoted[/]: worse than the current teacher "
            f"{inc['version']}: " + "; ".join(v["reasons"]) + ". Production is unchanged."
        )


def print_report(rep: dict[str, Any]) -> None:
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
            gate_cell(c["gate"]),
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
