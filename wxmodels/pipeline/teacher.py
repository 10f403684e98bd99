"""Train the teacher on the store: time split, normalisation, fit, checkpoint, ONNX export."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from wxmodels.config.cycle import CycleConfig
from wxmodels.data.store import Store
from wxmodels.errors import DataError
from wxmodels.export.onnx import export_onnx, onnx_parity
from wxmodels.nets.forecaster import Forecaster, ForecasterSpec, load_forecaster, save_forecaster
from wxmodels.pipeline.context import load_run_data, save_climatology, set_threads
from wxmodels.training.data import compute_stats, fit_climatology
from wxmodels.training.loop import fit, pick_device
from wxmodels.utils import code_version, derive_seed, read_json, stable_hash, write_json_atomic

__all__ = ["teacher_id", "train_teacher"]

log = logging.getLogger(__name__)


def teacher_id(cfg: CycleConfig, store_version: str, parent: str | None = None) -> str:
    """Identity of a teacher: data version, variables, split, architecture, training, code."""
    return "t-" + stable_hash(
        {
            "store": store_version,
            "variables": cfg.data.variables,
            "split": cfg.data.split.model_dump(),
            "net": cfg.net.model_dump(),
            "train": cfg.train.model_dump(),
            "code": code_version(),
            "parent": parent,
        },
        12,
    )


def train_teacher(
    cfg: CycleConfig, *, warm_start: str | Path | None = None, reuse: bool = True
) -> dict[str, Any]:
    """Train (or reuse) the teacher for the store's current version.

    Args:
        cfg: the cycle config.
        warm_start: a teacher directory whose weights initialise this one (same architecture).
        reuse: return an existing teacher with the same identity instead of training again.

    Returns:
        the teacher record (also written to ``<dir>/teacher.json``).
    """
    set_threads(cfg.train.threads)
    t0 = time.perf_counter()
    run = load_run_data(cfg)
    fields, split = run.fields, run.split
    parent = None
    if warm_start is not None:
        parent = read_json(Path(warm_start) / "teacher.json")["id"]
    tid = teacher_id(cfg, fields.store_version, parent)
    out = Path(cfg.workdir) / "teachers" / tid
    if reuse and (out / "teacher.json").exists():
        log.info("teacher %s exists for store %s: reusing it", tid, fields.store_version)
        return read_json(out / "teacher.json")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:  # the store's statistics, versioned with it
        stats = (
            Store(cfg.data.store, cfg.data.storage_options)
            .statistics()
            .normalisation(fields.variables)
        )
    except DataError:
        stats = compute_stats(fields, split.train)
    spec = ForecasterSpec(
        net=cfg.net.model_dump(),
        variables=list(fields.variables),
        lat=fields.lat.tolist(),
        lon=fields.lon.tolist(),
        step_hours=fields.step_hours,
        **stats,
    )
    model = Forecaster(spec, valid=fields.valid)
    if warm_start is not None:
        prev = load_forecaster(Path(warm_start) / "torch")
        model.core.load_state_dict(prev.core.state_dict())
    device = pick_device(cfg.train.device)
    model.to(device)
    seed = derive_seed(cfg.train.seed, "teacher", tid)
    steps = cfg.train.rollout_steps
    tr = split.inits(fields, "train", history=model.history, lead_steps=steps)
    va = split.inits(fields, "val", history=model.history, lead_steps=steps)
    if len(tr) < cfg.train.batch_size or len(va) < 1:
        raise DataError(
            f"too few complete training ({len(tr)}) or validation ({len(va)}) "
            "samples; ingest more data or shorten the gaps"
        )
    rep = fit(
        model,
        fields,
        tr,
        va,
        epochs=cfg.train.epochs,
        rollout_epochs=cfg.train.rollout_epochs,
        rollout_steps=steps,
        batch_size=cfg.train.batch_size,
        lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
        patience=cfg.train.patience,
        max_minutes=cfg.train.max_minutes,
        samples_per_epoch=cfg.train.samples_per_epoch,
        seed=seed,
        device=device,
        desc="teacher",
    )
    model.cpu()
    save_forecaster(model, tmp / "torch")
    onnx_path = export_onnx(model, tmp / "model.onnx")
    probe = split.inits(fields, "val", history=model.history, lead_steps=1)[:4]
    state = np.stack([fields.data[i - model.history + 1 : i + 1] for i in probe]).astype(np.float32)
    parity = onnx_parity(model, onnx_path, state, fields.hours[probe].astype(np.float32))
    save_climatology(fit_climatology(fields, split.train), tmp / "climatology.nc", fields.variables)
    record = {
        "id": tid,
        "parent": parent,
        "store_url": fields.store_url,
        "store_version": fields.store_version,
        "store_range": [str(fields.times[0]), str(fields.times[-1])],
        "split": split.describe(fields),
        "split_index": {"train": split.train, "val": split.val, "test": split.test},
        "variables": fields.variables,
        "step_hours": fields.step_hours,
        "params": model.n_params(),
        "net": cfg.net.model_dump(),
        "seed": seed,
        "fit": rep.to_dict(),
        "onnx_parity": parity,
        "onnx_size_bytes": onnx_path.stat().st_size,
        "code_version": code_version(),
        "wall_s": time.perf_counter() - t0,
        "dir": str(out),
    }
    write_json_atomic(tmp / "teacher.json", record)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log.info(
        "teacher %s: %d params, best val %.4f after %d epochs (%.0f s)",
        tid,
        record["params"],
        rep.best_val,
        rep.epochs,
        record["wall_s"],
    )
    return record
