"""Build one cell of the compression matrix from the teacher: torch steps, export, ONNX step."""

from __future__ import annotations

import copy
import logging
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wxmodels.compress import CellConfig, get_method
from wxmodels.compress.common import CompressContext
from wxmodels.compress.sensitivity import layer_sensitivity, protect_filter
from wxmodels.config.cycle import CycleConfig
from wxmodels.export.io import ModelIO, read_io, stamp_io
from wxmodels.export.onnx import export_onnx, onnx_parity
from wxmodels.export.packing import pack_onnx
from wxmodels.nets.forecaster import Forecaster, save_forecaster
from wxmodels.nets.macs import count_macs
from wxmodels.pipeline.context import (
    clim_all,
    load_run_data,
    load_teacher,
    model_climatology,
    set_threads,
    spec_of,
)
from wxmodels.pipeline.records import CellRecord, TeacherRecord
from wxmodels.utils import code_version, derive_seed, read_json, stable_hash, write_json_atomic

__all__ = ["build_cell", "cell_id"]

log = logging.getLogger(__name__)


def cell_id(cfg: CycleConfig, cell: CellConfig, teacher: TeacherRecord) -> str:
    """Stable id: teacher version, store version, cell config, budgets and code version."""
    return "c-" + stable_hash(
        {
            "teacher": teacher.id,
            "store": teacher.store_version,
            "cell": cell.model_dump(),
            "budget": cfg.compress.max_minutes_per_fit,
            "train": cfg.train.model_dump(),
            "code": code_version(),
        },
        12,
    )


def _probe(model: Forecaster, run, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    f = run.fields
    idx = run.split.inits(f, "val", history=model.history, lead_steps=1)[:n]
    state = np.stack([f.data[i - model.history + 1 : i + 1] for i in idx]).astype(np.float32)
    return state, f.hours[idx].astype(np.float32)


def _sparsity(model: Forecaster) -> float:
    w = [p.detach() for n, p in model.core.named_parameters() if n.endswith("weight")]
    total = sum(x.numel() for x in w)
    return float(sum((x == 0).sum().item() for x in w) / max(total, 1))


def _sensitivity(
    cfg: CycleConfig, teacher: Forecaster, trec: TeacherRecord, ctx: CompressContext
) -> dict[str, float]:
    """The teacher's per-layer sensitivity, computed once per teacher and shared by cells."""
    path = Path(cfg.workdir) / "sensitivity" / f"{trec.id}.json"
    if path.exists():
        return read_json(path)
    sens = layer_sensitivity(teacher, ctx)
    write_json_atomic(path, sens)
    return sens


def build_cell(cfg: CycleConfig, cell: CellConfig, teacher_dir: str) -> CellRecord:
    """Build (or reuse) ``cell`` from the teacher in ``teacher_dir``; returns its record
    (written to ``cell.json``).

    Failures raise; the caller reports them and lets the other cells go on.
    """
    t0 = time.perf_counter()
    name = cell.name
    teacher, trec = load_teacher(teacher_dir)
    cid = cell_id(cfg, cell, trec)
    out = Path(cfg.workdir) / "candidates" / cid
    if cfg.compress.reuse and (out / "cell.json").exists():
        try:
            rec = CellRecord.load(out / "cell.json")
            log.info("cell %s (%s) already built: reusing", name, cid)
            return rec
        except ValueError as e:
            log.warning("cell %s: unreadable record (%s); building it again", cid, e)
    set_threads(cfg.runtime.torch_threads)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    foreign = trec.foreign is not None
    torch_steps = [s for s in cell.steps if get_method(s).stage == "torch"]
    if foreign:
        _check_foreign_cell(cell, torch_steps)
    run = load_run_data(cfg)
    seed = derive_seed(cfg.train.seed, "cell", cid)
    torch.manual_seed(seed)
    # a foreign teacher's climatology is its students' (the file itself takes none)
    clim = model_climatology(teacher_dir) if torch_steps or not foreign else None
    ctx = CompressContext(
        teacher=teacher,
        fields=run.fields,
        split=run.split,
        train=cfg.train,
        seed=seed,
        max_minutes=cfg.compress.max_minutes_per_fit,
        clim_all=clim_all(run.fields, clim),
        climatology=clim,
    )
    if clim is not None:  # candidates take the teacher's input climatology
        shutil.copyfile(Path(teacher_dir) / "climatology.nc", tmp / "climatology.nc")
    if foreign and not torch_steps:  # an ONNX-side method on the foreign file itself
        record = _foreign_onnx_cell(cell, cid, trec, teacher_dir, ctx, run, tmp, out, t0)
        _land(record, tmp, out)
        log.info("cell %s: %d bytes (%.0f s)", name, record.pack_bytes, record.wall_s)
        return record
    model = copy.deepcopy(teacher)
    filter_fn, protected = None, list[str]()
    if cell.protect:
        filter_fn, protected = protect_filter(_sensitivity(cfg, teacher, trec, ctx), cell.protect)
        log.info("cell %s: leaves the most sensitive layers alone: %s", name, protected)
    onnx_step = None
    for step in cell.steps:
        method = get_method(step)
        if method.stage == "onnx":
            onnx_step = step
            continue
        log.info("cell %s: %s", name, step.method)
        model = method.apply(model, step, ctx=ctx, filter_fn=filter_fn)
    model.eval()
    save_forecaster(model, tmp / "torch")
    fp32 = export_onnx(model, tmp / "model_fp32.onnx")
    state, tm = _probe(model, run)
    parity_fp32 = onnx_parity(model, fp32, state, tm, clim)
    if onnx_step is not None:
        final = get_method(onnx_step).apply(
            fp32, tmp / "model.onnx", onnx_step, ctx=ctx, history=model.history
        )
        stamp_io(final, ModelIO.from_spec(model.spec))  # the quantizers drop metadata
        parity = onnx_parity(model, final, state, tm, clim)
    else:
        final = fp32.rename(tmp / "model.onnx")
        parity = parity_fp32
    packed = pack_onnx(final, tmp / "model.wxpack")
    record = CellRecord(
        **_artifact(cell, cid, trec, out, final, packed),
        climatology_bytes=(tmp / "climatology.nc").stat().st_size if clim is not None else 0,
        params=model.n_params(),
        sparsity=_sparsity(model),
        protected=protected,
        macs=count_macs(model),
        history=model.history,
        parity=parity_fp32,
        quantization_error=parity if onnx_step is not None else None,
        parity_gated=True,
        seed=seed,
        code_version=code_version(),
        wall_s=time.perf_counter() - t0,
    )
    _land(record, tmp, out)
    log.info(
        "cell %s: %d params, %d bytes, parity %.2g (%.0f s)",
        name,
        record.params,
        record.pack_bytes,
        parity_fp32,
        record.wall_s,
    )
    return record


def _artifact(
    cell: CellConfig, cid: str, trec: TeacherRecord, out: Path, final: Path, packed: dict
) -> dict[str, Any]:
    """The fields of a cell's record that say what it is and where its files are."""
    return {
        "name": cell.name,
        "id": cid,
        "label": cell.label,
        "method": cell.steps[0].method if len(cell.steps) == 1 else cell.label,
        "steps": [s.model_dump() for s in cell.steps],
        "teacher": trec.id,
        "store_version": trec.store_version,
        "dir": str(out),
        "onnx": str(out / "model.onnx"),
        # deployable size: the pack (sparse / codebook weights, entropy-coded), which unpacks
        # to exactly this ONNX file
        "pack_bytes": packed["bytes"],
        "onnx_bytes": final.stat().st_size,
        "packing": packed["encodings"],
    }


def _land(record: CellRecord, tmp: Path, out: Path) -> None:
    """Write the record and move the finished cell into place."""
    record.write(tmp / "cell.json")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def _check_foreign_cell(cell: CellConfig, torch_steps: list) -> None:
    """A foreign teacher has no torch weights: a cell either applies an ONNX-side method to
    the file or starts by distilling a torch student from it."""
    if torch_steps and torch_steps[0].method != "distill":
        raise ValueError(
            f"cell {cell.name}: the teacher is a foreign ONNX file without torch weights: "
            f"{torch_steps[0].method} needs them; start the cell with distill, or use an ONNX "
            "step (int8, dynamic) alone"
        )
    if cell.protect:
        raise ValueError(f"cell {cell.name}: protect needs the teacher's torch layers")
    if not cell.steps:
        raise ValueError(f"cell {cell.name}: no step")


def _foreign_onnx_cell(
    cell: CellConfig,
    cid: str,
    trec: TeacherRecord,
    teacher_dir: str,
    ctx: CompressContext,
    run,
    tmp: Path,
    out: Path,
    t0: float,
) -> CellRecord:
    """int8 / dynamic applied to a foreign teacher's file directly."""
    from wxmodels.export.onnx import OrtForecaster

    (step,) = cell.steps
    src = Path(teacher_dir) / "model.onnx"
    history = OrtForecaster(src).history
    final = get_method(step).apply(src, tmp / "model.onnx", step, ctx=ctx, history=history)
    stamp_io(final, read_io(teacher_dir))
    shutil.copyfile(Path(teacher_dir) / "model.json", tmp / "model.json")  # the same I/O
    f = run.fields
    idx = run.split.inits(f, "val", history=history, lead_steps=1)[:4]
    state = np.stack([f.data[i - history + 1 : i + 1] for i in idx]).astype(np.float32)
    tm = f.hours[idx].astype(np.float32)
    std = np.asarray(spec_of(teacher_dir)["std"], np.float32).reshape(1, -1, 1, 1)
    diff = np.abs(OrtForecaster(final)(state, tm) - OrtForecaster(src)(state, tm)) / std
    packed = pack_onnx(final, tmp / "model.wxpack")
    return CellRecord(
        **_artifact(cell, cid, trec, out, final, packed),
        climatology_bytes=0,
        params=trec.params,
        sparsity=0.0,
        protected=[],
        macs=None,
        history=history,
        parity=0.0,
        quantization_error=float(np.nanmax(diff)),
        parity_gated=True,
        seed=ctx.seed,
        code_version=code_version(),
        wall_s=time.perf_counter() - t0,
    )


def describe_failure(exc: BaseException) -> str:
    """One line for a failed cell: the exception type and message."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
