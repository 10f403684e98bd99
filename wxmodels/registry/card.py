"""Model cards (markdown): what the model is, what it was trained on, how well it does."""

from __future__ import annotations

from typing import Any

__all__ = ["deployable_bytes", "model_card", "scorecard_table"]


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}"


def scorecard_table(scorecard: dict[str, Any], models: list[str], metric: str = "rmse") -> str:
    """A markdown table: one row per (variable, model), one column per lead time."""
    first = scorecard[models[0]][metric]
    variables = list(first)
    leads = list(first[variables[0]])
    head = "| variable | model | " + " | ".join(f"{lead} h" for lead in leads) + " |"
    sep = "|---|---|" + "---|" * len(leads)
    rows = [head, sep]
    for v in variables:
        for m in models:
            if m not in scorecard:
                continue
            vals = scorecard[m][metric][v]
            rows.append(f"| {v} | {m} | " + " | ".join(_fmt(vals[lead]) for lead in leads) + " |")
    return "\n".join(rows)


def deployable_bytes(metrics: dict[str, Any]) -> int | None:
    """The size a deployer downloads: the pack of a candidate, the ONNX file of a teacher
    (``size_bytes`` in manifests written before the two were named apart)."""
    for key in ("pack_bytes", "onnx_bytes", "size_bytes"):
        if metrics.get(key):
            return int(metrics[key])
    return None


def _variables(sig: dict[str, Any]) -> list[str]:
    listed = sig.get("variables", [])
    if isinstance(listed, dict):  # manifests written before the order was kept
        return [f"{v} [{u}]" for v, u in listed.items()]
    return [f"{v['name']} [{v['units']}]" for v in listed]


def _architecture(arch: dict[str, Any] | None) -> str:
    """``transformer (transformer family): depth 4, width 32, heads 4, ...``; a plug-in core
    names its entry point or ``module:factory``, distribution and version."""
    if not arch:
        return "-"
    shape = ", ".join(
        f"{k} {arch[k]}"
        for k in ("depth", "width", "heads", "patch", "window", "mlp_ratio", "history")
        if k in arch
    )
    where = ""
    if arch.get("family") == "foreign":
        return (
            f"a foreign ONNX file ({arch.get('source')}, sha256 "
            f"{str(arch.get('sha256'))[:16]}...), registered with its declared contract, "
            "not trained here"
        )
    if arch.get("family") == "plugin":
        dist = arch.get("distribution")
        where = f"; plug-in `{arch.get('plugin')}`" + (
            f" from {dist} {arch.get('version') or ''}".rstrip() if dist else ""
        )
        if not dist and arch.get("version"):
            where += f" version {arch['version']}"
    return f"`{arch.get('arch')}` ({arch.get('family')} family): {shape}{where}"


def _throughput(metrics: dict[str, Any]) -> str:
    """Batch-16 throughput in one-step forecasts per second, one thread."""
    b16 = metrics.get("latency_ms_batch16")
    if not isinstance(b16, int | float) or b16 <= 0:
        return ""
    return f" (throughput {16e3 / b16:,.0f} steps/s at batch 16)"


def _deploy_lines(manifest: dict[str, Any]) -> list[str]:
    edge = manifest.get("deploy", {}).get("edge")
    if not edge:
        return []
    lines = [
        f"- on a device: `{edge['install']}`, then `{edge['command']}` runs `{edge['file']}` "
        f"({edge['bytes']} bytes); peak memory {edge['peak_rss_mb']} MB for the whole process "
        f"(load and one step; {edge['session']}), loaded in {edge['load_ms']} ms"
    ]
    if edge.get("ort"):
        lines.append(
            "- for onnxruntime's minimal builds: `model.ort`, the batch-1 form in ORT format "
            "(`wxc-edge pull --ort`)"
        )
    if "torch" in manifest.get("runtimes", []):
        lines.append(
            "- on HPC: `pip install 'wxcompress[pipeline]'`, `wxc predict --runtime torch` "
            "(the safetensors weights) or `--runtime onnx`, batched"
        )
    return lines


def model_card(manifest: dict[str, Any], scorecard: dict[str, Any], model_key: str) -> str:
    """Render the card of one registry version.

    Args:
        manifest: the version's manifest body (before publication: without files/version).
        scorecard: the evaluation's scorecard JSON (all models).
        model_key: this model's name in the scorecard (``teacher`` or the cell name).
    """
    lin = manifest.get("lineage", {})
    sig = manifest.get("signature", {})
    metrics = manifest.get("metrics", {})
    gate = manifest.get("gates", {})
    models = [model_key] + [
        m for m in ("teacher", "persistence", "climatology", "linear") if m != model_key
    ]
    lines = [
        f"# {manifest.get('name', '')}: {manifest.get('kind', '')} `{model_key}`",
        "",
        manifest.get("description", ""),
        "",
        "## Summary",
        f"- recipe: `{manifest.get('recipe_label', 'teacher')}`",
        f"- architecture: {_architecture(manifest.get('architecture'))}",
        f"- parameters: {metrics.get('params', '-')}",
        f"- deployable size: {deployable_bytes(metrics) or '-'} bytes",
        f"- onnxruntime latency (1 thread, ms): batch 1 {_fmt(metrics.get('latency_ms_batch1'))}"
        f", batch 16 {_fmt(metrics.get('latency_ms_batch16'))}{_throughput(metrics)}",
        *_deploy_lines(manifest),
        f"- gates: {'passed' if gate.get('passed', True) else 'FAILED'}"
        + ("".join(f"\n  - {r}" for r in gate.get("reasons", []))),
        "",
        "## Inputs and outputs",
        f"- variables, in channel order: {', '.join(_variables(sig))}",
        f"- grid: {sig.get('grid', {}).get('shape')} points, lat "
        f"{sig.get('grid', {}).get('lat_range')}, lon {sig.get('grid', {}).get('lon_range')}",
        f"- step: {sig.get('step_hours')} h; history: {sig.get('history')} states",
        "- ONNX inputs: `state` (batch, history, variables, lat, lon) in physical units, NaN "
        "outside the domain; `time` (batch,) hours since 1970-01-01 of the newest state.",
        "- ONNX output: `next` (batch, variables, lat, lon), one step later. Roll out for "
        "longer leads (`wxc predict` does this).",
        "",
        "## Lineage",
        f"- store: `{lin.get('store_url')}` version `{lin.get('store_version')}`, "
        f"{lin.get('time_range')}",
        f"- training window: {lin.get('train_window')}; test window: {lin.get('test_window')}",
        f"- teacher: `{lin.get('teacher')}`; code: `{lin.get('code_version')}`",
        "",
        "## Skill on the test window (RMSE; lower is better)",
        "",
        scorecard_table(scorecard, models, "rmse"),
        "",
        "## Anomaly correlation (ACC; higher is better)",
        "",
        scorecard_table(scorecard, models, "acc"),
        "",
        "Metrics follow WeatherBench 2: latitude (cell-area) weighted, NaN-masked, RMSE = root of "
        "the time-mean MSE, ACC uncentred against the store's climatology; SEEPS for "
        "precipitation; baselines: persistence, climatology, linear regression on anomalies.",
    ]
    if manifest.get("synthetic"):
        lines.insert(2, "> **Trained on SYNTHETIC data (not real weather).** For demonstration.\n")
    return "\n".join(lines) + "\n"
