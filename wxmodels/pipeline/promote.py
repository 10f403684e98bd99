"""Promote: pick the winners per profile and publish them (and the teacher) to the registry."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import onnx

from wxmodels.compress.registry import get_method
from wxmodels.config.cycle import CycleConfig
from wxmodels.data.stats import Climatology
from wxmodels.export.io import ModelIO
from wxmodels.nets.plugins import core_source
from wxmodels.pipeline.records import (
    Candidate,
    CellRecord,
    Evaluation,
    Gate,
    Promotion,
    TeacherRecord,
)
from wxmodels.registry.card import model_card
from wxmodels.registry.core import Registry
from wxmodels.skill.pareto import mean_relative_rmse
from wxmodels.utils import code_version, git_commit, package_versions

__all__ = ["promote", "select_winners"]

log = logging.getLogger(__name__)


def select_winners(evaluation: Evaluation, cfg: CycleConfig) -> dict[str, str]:
    """``{profile: candidate name}``.

    * ``edge``: the smallest deployable artifact among candidates that pass the gates;
    * ``hpc``: among passing candidates whose mean relative RMSE is within
      ``promote.hpc_max_rmse_increase`` of the best passing candidate's, the highest batch-16
      throughput; latencies within 10 % of the fastest count as a tie (timing noise), broken
      by skill, so that the alias does not flap between equally fast models.
    """
    passing = [c for c in evaluation.candidates if c.gate.passed]
    if not passing:
        return {}
    sc = evaluation.scorecard
    edge = min(passing, key=lambda c: (c.pack_bytes, c.name))
    skill = {c.name: mean_relative_rmse(sc, c.name) for c in passing}
    best = min(skill.values())
    near = [c for c in passing if skill[c.name] <= best + cfg.promote.hpc_max_rmse_increase]

    def lat(c: Candidate) -> float:
        return c.latency_ms_batch16 or float("inf")

    fastest = min(lat(c) for c in near)
    ties = [c for c in near if lat(c) <= 1.10 * fastest]
    hpc = min(ties, key=lambda c: (skill[c.name], c.name))
    return {"edge": edge.name, "hpc": hpc.name}


def _signature(onnx_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    m = onnx.load(str(onnx_path), load_external_data=False)

    def dims(t) -> list:
        return [d.dim_param or d.dim_value for d in t.type.tensor_type.shape.dim]

    data = spec["_data"]
    lat, lon = data["lat"], data["lon"]
    opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=None)
    return {
        "inputs": {i.name: dims(i) for i in m.graph.input},
        "outputs": {o.name: dims(o) for o in m.graph.output},
        "opset": opset,
        # an ordered list: the manifest is written with sorted keys, which would sort a mapping
        "variables": ModelIO.from_spec(spec).manifest_variables(),
        "grid": {
            "lat": lat,
            "lon": lon,
            "shape": [len(lat), len(lon)],
            "lat_range": [min(lat), max(lat)],
            "lon_range": [min(lon), max(lon)],
        },
        "step_hours": data["step_hours"],
        "history": data["net"].get("history", 1),
    }


def _publish(
    reg: Registry,
    cfg: CycleConfig,
    *,
    kind: str,
    key: str,
    src_dir: Path,
    onnx_path: Path,
    evaluation: Evaluation,
    teacher: TeacherRecord,
    metrics: dict[str, Any],
    gate: Gate,
    recipe: list,
    label: str,
    run: str,
) -> str:
    torch_dir = src_dir / "torch"
    spec_path = torch_dir / "model.json" if torch_dir.exists() else src_dir / "model.json"
    spec = json.loads(spec_path.read_text())
    sig = _signature(onnx_path, spec)
    manifest = {
        "name": cfg.name,
        "kind": kind,
        "description": cfg.description,
        "synthetic": cfg.data.source.kind == "synthetic",
        "format": "onnx",
        "runtime": {
            "onnxruntime": f">={package_versions(('onnxruntime',)).get('onnxruntime')}",
            "opset": sig["opset"],
        },
        "signature": sig,
        "architecture": architecture(spec["_data"]["net"], teacher.foreign),
        # runtimes that reproduce the scored forecasts: an ONNX-side step (int8) leaves torch
        # weights that are the model before it
        "runtimes": ["onnx"]
        + (
            []
            if not torch_dir.exists()
            or any(get_method(s["method"]).stage == "onnx" for s in recipe)
            else ["torch"]
        ),
        "recipe": recipe,
        "recipe_label": label,
        "cell": key,
        "metrics": metrics,
        "gates": gate.model_dump(),
        "scorecard": {
            m: evaluation.scorecard[m]
            for m in (key, "teacher", "persistence", "climatology", "linear")
            if m in evaluation.scorecard
        },
        "lineage": {
            "store_url": teacher.store_url,
            "store_version": teacher.store_version,
            "time_range": list(teacher.store_range),
            "train_window": teacher.split["train"],
            "test_window": list(evaluation.test_window),
            "teacher": teacher.id,
            "teacher_parent": teacher.parent,
            "teacher_parent_version": teacher.parent_version,
            # a foreign ONNX teacher: its file's digest and the contract it was registered with
            "teacher_onnx": teacher.foreign,
            "code_version": code_version(),
            "git_commit": git_commit(),
            "packages": package_versions(),
            "flow_run": run,
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        sc = Path(tmp) / "scorecard.json"
        sc.write_text(json.dumps(manifest["scorecard"], indent=1))
        files: dict[str, str | Path] = {
            "model.onnx": onnx_path,
            "model.json": spec_path,
            "scorecard.json": sc,
        }
        identity = ["model.onnx", "model.json"]
        if (torch_dir / "model.safetensors").exists():  # a foreign teacher has no torch weights
            files["model.safetensors"] = torch_dir / "model.safetensors"
            identity.append("model.safetensors")
        if (src_dir / "model.wxpack").exists():  # the compact form of model.onnx
            files["model.wxpack"] = src_dir / "model.wxpack"
        if (src_dir / "climatology.nc").exists():  # the model's input climatology
            files["climatology.nc"] = src_dir / "climatology.nc"
            identity.append("climatology.nc")
            # the same coefficients for the edge runtime, which reads no NetCDF
            npz = Path(tmp) / "climatology.npz"
            Climatology.from_netcdf(src_dir / "climatology.nc").to_npz(npz)
            files["climatology.npz"] = npz
        manifest["deploy"] = _edge_files(Path(tmp), onnx_path, files)
        card = Path(tmp) / "card.md"
        card.write_text(model_card(manifest, evaluation.scorecard, key))
        files["card.md"] = card
        for p in evaluation.plots:
            files[Path(p).name] = Path(p)
        # the version is the model's identity: a re-run that re-measures the card reuses it
        return reg.publish(cfg.name, files, manifest, identity=identity)


def _edge_files(tmp: Path, onnx_path: Path, files: dict[str, str | Path]) -> dict[str, Any]:
    """``model.ort`` beside ``model.onnx`` (checked to give the same forecast) and what the
    edge runtime needs to run the model: install, files, peak memory (measured in a process of
    its own, as ``wxc-edge`` runs it)."""
    from wxmodels.export.measure import measure
    from wxmodels.export.runtime import save_ort

    stage = tmp / "edge"
    stage.mkdir()
    shutil.copyfile(onnx_path, stage / "model.onnx")
    if "climatology.npz" in files:
        shutil.copyfile(files["climatology.npz"], stage / "climatology.npz")
    run = stage / "model.onnx"  # what wxc-edge runs (fully optimised for the device at load)
    try:
        save_ort(stage / "model.onnx", stage / "model.ort")
        files["model.ort"] = stage / "model.ort"
    except (ValueError, RuntimeError) as e:  # an operator ORT cannot save: the .onnx serves
        log.warning("no model.ort for %s: %s", onnx_path, e)
    cost = measure(run)
    return {
        "edge": {
            "install": "pip install 'wxcompress[edge]'",
            "command": "wxc-edge predict",
            "file": run.name,
            "bytes": run.stat().st_size,
            "peak_rss_mb": round(cost["peak_rss_mb"], 1),
            "load_ms": round(cost["load_ms"], 1),
            "session": "onnxruntime CPU, 1 intra-op thread, no spinning",
            "ort": "model.ort" in files,
        },
        "hpc": {
            "install": "pip install 'wxcompress[pipeline]'",
            "command": "wxc predict --runtime torch|onnx",
        },
    }


def architecture(net: dict[str, Any], foreign: dict[str, Any] | None = None) -> dict[str, Any]:
    """The family and shape of a model's core, and for a plug-in core where it comes from
    (entry point or ``module:factory``, its distribution and version); a foreign ONNX file
    (``net.arch = "onnx"``) is named by its source and digest."""
    if net.get("arch") == "onnx":
        src = foreign or {}
        return {
            "arch": "onnx",
            "family": "foreign",
            "source": src.get("source"),
            "sha256": src.get("sha256"),
            "history": net.get("history"),
        }
    keys = ["width", "depth", "history", "members"]
    if net.get("arch") == "transformer":
        keys += ["heads", "patch", "window", "mlp_ratio"]
    out = core_source(net.get("arch", "unet")).to_json()
    out.update({k: net[k] for k in keys if k in net})
    if net.get("options"):
        out["options"] = net["options"]
    return out


def promote(
    cfg: CycleConfig, evaluation: Evaluation, teacher_dir: str, *, run: str = ""
) -> list[Promotion]:
    """Publish the teacher and the profile winners; move aliases that change.

    When the evaluation scored the registry's current teacher and the new one is worse
    (:func:`~wxmodels.pipeline.champion.compare_teachers`), nothing is published.
    """
    reg = Registry.for_config(cfg.promote)
    teacher = TeacherRecord.load(Path(teacher_dir) / "teacher.json")
    inc = evaluation.incumbent
    if inc is not None and not inc.verdict.promote:
        # the new teacher is worse than production's: keep it, and everything derived from it
        # (its students were gated against a worse reference) out of the registry
        log.warning(
            "teacher %s is not promoted: %s. The current teacher %s@%s and the edge/hpc "
            "aliases are kept.",
            teacher.id,
            "; ".join(inc.verdict.reasons),
            cfg.name,
            inc.version,
        )
        return []
    entries: dict[str, dict[str, Any]] = {}  # version -> fields of its Promotion

    def move(alias: str, version: str, why: str) -> bool:
        if reg.resolve_alias(cfg.name, alias) == version:
            return False
        reg.set_alias(cfg.name, alias, version, reason=why, run=run)
        return True

    def record(version: str, kind: str, cell: str, alias: str, moved: bool) -> None:
        e = entries.setdefault(
            version,
            {"model": cfg.name, "version": version, "kind": kind, "cell": cell},
        )
        e.setdefault("aliases", []).append(alias)
        e.setdefault("moved", [])
        if moved:
            e["moved"].append(alias)

    if cfg.promote.promote_teacher:
        t = evaluation.teacher
        v = _publish(
            reg,
            cfg,
            kind="teacher",
            key="teacher",
            src_dir=Path(teacher_dir),
            onnx_path=Path(teacher_dir) / "model.onnx",
            evaluation=evaluation,
            teacher=teacher,
            metrics={
                "onnx_bytes": t.onnx_bytes,
                "params": t.params,
                "latency_ms_batch1": t.latency_ms_batch1,
                "latency_ms_batch16": t.latency_ms_batch16,
            },
            gate=Gate(passed=True),
            recipe=[],
            label="teacher",
            run=run,
        )
        why = f"teacher {teacher.id} trained on store {teacher.store_version}"
        record(v, "teacher", "teacher", "teacher", move("teacher", v, why))
    winners = select_winners(evaluation, cfg)
    published: dict[str, str] = {}
    for profile, name in winners.items():
        c = evaluation.candidate(name)
        if name not in published:
            published[name] = _publish(
                reg,
                cfg,
                kind="candidate",
                key=name,
                src_dir=Path(c.dir),
                onnx_path=Path(c.onnx),
                evaluation=evaluation,
                teacher=teacher,
                metrics=c.model_dump(
                    include={
                        "pack_bytes",
                        "onnx_bytes",
                        "params",
                        "latency_ms_batch1",
                        "latency_ms_batch16",
                        "sparsity",
                        "parity",
                        "quantization_error",
                    }
                ),
                gate=c.gate,
                recipe=CellRecord.load(Path(c.dir) / "cell.json").steps,
                label=c.label,
                run=run,
            )
        why = f"{profile} winner: {name} ({c.label}), {c.pack_bytes} bytes"
        record(published[name], "candidate", name, profile, move(profile, published[name], why))
    if not winners:
        log.warning("no candidate passed the gates: edge and hpc aliases are unchanged")
    return [Promotion(**e) for e in entries.values()]
