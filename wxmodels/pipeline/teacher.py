"""Train the teacher on the store: time split, normalisation, fit, checkpoint, ONNX export."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wxmodels.config.cycle import CycleConfig
from wxmodels.data.fields import Fields, Split, compute_stats, fit_climatology
from wxmodels.data.lazy import iter_blocks
from wxmodels.data.stats import Climatology
from wxmodels.errors import ConfigError, DataError
from wxmodels.export.onnx import export_onnx, onnx_parity
from wxmodels.nets.forecaster import (
    Forecaster,
    ForecasterSpec,
    ensemble,
    load_forecaster,
    member,
    save_forecaster,
)
from wxmodels.nets.macs import count_macs
from wxmodels.pipeline.champion import warm_start_source
from wxmodels.pipeline.context import RunData, clim_all, load_run_data, set_threads
from wxmodels.pipeline.records import TeacherRecord
from wxmodels.registry.core import MANIFEST
from wxmodels.training.linear_init import init_linear_path, init_spatial_path
from wxmodels.training.loop import FitSettings, fit, pick_device
from wxmodels.utils import code_version, derive_seed, read_json, stable_hash

__all__ = ["build_spec", "teacher_id", "train_teacher"]

log = logging.getLogger(__name__)


def teacher_id(cfg: CycleConfig, store_version: str, parent: str | None = None) -> str:
    """Identity of a teacher: data version, variables, split, architecture, training, code."""
    return "t-" + stable_hash(
        {
            "store": store_version,
            "variables": cfg.data.variables,
            "split": cfg.data.split.model_dump(),
            "net": cfg.net.model_dump(),
            "train": cfg.train.model_dump(exclude={"init"}),
            "code": code_version(),
            "parent": parent,
        },
        12,
    )


def in_window(inits: np.ndarray, fields: Fields, split: Split, cfg: CycleConfig) -> np.ndarray:
    """The training inits within ``train.window`` of the training part's end (all of them
    without a window)."""
    if cfg.train.window is None or not len(inits):
        return inits
    from wxmodels.config.replay import parse_period

    end = fields.times[split.train[1] - 1]
    return inits[fields.times[inits] >= end - parse_period(cfg.train.window)]


def _statics(cfg: CycleConfig, run: RunData) -> tuple[list[str], np.ndarray | None]:
    if cfg.net.statics == "none":
        return [], None
    try:
        st = run.store.static()
    except (DataError, FileNotFoundError, KeyError):
        return [], None
    names = [n for n in ("orography", "land_sea_mask") if n in st.data_vars]
    if not names:
        return [], None
    return names, np.stack([st[n].values.astype(np.float32) for n in names])


def build_spec(
    cfg: CycleConfig, run: RunData
) -> tuple[ForecasterSpec, np.ndarray | None, Climatology | None, np.ndarray | None]:
    """The teacher's spec from the data: normalisation (the store's statistics), statics, and
    for climatology models the training-window climatology, the anomalies' std, their lag-1
    autocorrelation (initial persistence) and the std of the persistence residual."""
    fields, split = run.fields, run.split
    try:  # the store's statistics, versioned with it
        stats = run.store.statistics().normalisation(fields.variables)
    except DataError:
        stats = compute_stats(fields, split.train)
    names, statics = _statics(cfg, run)
    spec = ForecasterSpec(
        net=cfg.net.model_dump(),
        variables=list(fields.variables),
        lat=fields.lat.tolist(),
        lon=fields.lon.tolist(),
        step_hours=fields.step_hours,
        statics=names,
        mean=stats["mean"],
        std=stats["std"],
        tendency_std=stats["tendency_std"],
    )
    if not cfg.net.climatology:
        return spec, statics, None, None
    clim = Climatology.from_accumulator(fit_climatology(fields, split.train), fields.variables)
    call = clim_all(fields, clim)
    assert call is not None
    rho, anomaly_std, resid_std = _anomaly_moments(fields, call, split.train)
    spec.climatology = True
    spec.anomaly_std = [float(x) or 1.0 for x in anomaly_std]
    spec.damping = rho.tolist()
    spec.tendency_std = [float(x) or 1.0 for x in resid_std]
    return spec, statics, clim, call


def _anomaly_moments(
    fields: Fields, call: Any, part: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per variable over ``part`` (valid points, finite values): the anomalies' lag-1
    autocorrelation (clipped to [0.05, 0.999]), their std, and the std of the persistence
    residual ``x(t) - rho x(t-1)``. Accumulated block by block (bounded memory)."""
    nv = len(fields.variables)
    n, s1, s2 = np.zeros(nv), np.zeros(nv), np.zeros(nv)
    pn, p0, p1, p00, p11, p01 = (np.zeros(nv) for _ in range(6))
    prev = None
    for lo, hi in iter_blocks(fields.data, part[0], part[1]):
        anom = (np.asarray(fields.data[lo:hi]) - np.asarray(call[lo:hi]))[:, :, fields.valid]
        anom = anom.astype(np.float64)  # (T, V, P)
        ok = np.isfinite(anom)
        z = np.where(ok, anom, 0.0)
        n += ok.sum(axis=(0, 2))
        s1 += z.sum(axis=(0, 2))
        s2 += (z * z).sum(axis=(0, 2))
        seq = anom if prev is None else np.concatenate([prev[None], anom])
        x0, x1 = seq[:-1], seq[1:]
        okp = np.isfinite(x0) & np.isfinite(x1)
        x0, x1 = np.where(okp, x0, 0.0), np.where(okp, x1, 0.0)
        pn += okp.sum(axis=(0, 2))
        p0 += x0.sum(axis=(0, 2))
        p1 += x1.sum(axis=(0, 2))
        p00 += (x0 * x0).sum(axis=(0, 2))
        p11 += (x1 * x1).sum(axis=(0, 2))
        p01 += (x0 * x1).sum(axis=(0, 2))
        prev = anom[-1]
    rho = np.clip(p01 / np.maximum(p00, 1e-12), 0.05, 0.999)
    nn, pp = np.maximum(n, 1), np.maximum(pn, 1)
    std = np.sqrt(np.maximum(s2 / nn - (s1 / nn) ** 2, 0.0))
    r1 = (p1 - rho * p0) / pp
    r2 = (p11 - 2 * rho * p01 + rho * rho * p00) / pp
    return rho, std, np.sqrt(np.maximum(r2 - r1 * r1, 0.0))


def _warm_start(model: Forecaster, prev: Forecaster) -> int:
    """Copy the parameters whose names and shapes match; return how many tensors."""
    own = model.state_dict()
    take = {
        k: v
        for k, v in prev.state_dict().items()
        if k in own
        and own[k].shape == v.shape
        and not k.startswith(
            (
                "mean",
                "std",
                "tendency_std",
                "anomaly_std",
                "valid",
                "statics",
                "lat_",
                "lon_",
                "floor",
            )
        )
    }
    model.load_state_dict(take, strict=False)
    return len(take)


def _parent(path: Path) -> tuple[str, Path]:
    """``(teacher id, weights directory)`` of a warm-start source: a teacher directory of this
    project (``teacher.json`` + ``torch/``) or a teacher pulled from the registry."""
    if (path / "teacher.json").exists():
        return TeacherRecord.load(path / "teacher.json").id, path / "torch"
    if (path / MANIFEST).exists() and (path / "model.json").exists():
        man = read_json(path / MANIFEST)
        if man.get("kind") != "teacher":
            raise ConfigError(f"warm start {path}: a {man.get('kind')!r}, not a teacher")
        return man["lineage"]["teacher"], path
    raise ConfigError(
        f"warm start {path}: neither a teacher directory (teacher.json) nor a teacher "
        "pulled from the registry (manifest.json + model.json)"
    )


def train_teacher(
    cfg: CycleConfig, *, warm_start: str | Path | None = None, reuse: bool = True
) -> TeacherRecord:
    """Train (or reuse) the teacher for the store's current version.

    Args:
        cfg: the cycle config.
        warm_start: a teacher directory whose weights initialise this one (where shapes match).
        reuse: return an existing teacher with the same identity instead of training again.

    Returns:
        the teacher record (also written to ``<dir>/teacher.json``). With ``teacher.onnx``
        in the config the foreign file is registered instead (nothing is trained).
    """
    if cfg.teacher is not None:
        from wxmodels.pipeline.foreign import register_foreign_teacher

        return register_foreign_teacher(cfg)
    set_threads(cfg.train.threads)
    t0 = time.perf_counter()
    run = load_run_data(cfg)
    fields, split = run.fields, run.split
    parent, parent_version, why = None, None, "training from scratch"
    if warm_start is None:
        inc, why = warm_start_source(
            cfg, fields.store_version, list(fields.variables), tuple(fields.data.shape[2:])
        )
        if inc is not None:
            warm_start, parent_version = inc.dir, inc.version
    if warm_start is not None:
        parent, prev_dir = _parent(Path(warm_start))
        why = f"warm start from teacher {parent}" + (
            f" ({cfg.name}@{parent_version})" if parent_version else ""
        )
    log.info("%s", why)
    tid = teacher_id(cfg, fields.store_version, parent)
    out = Path(cfg.workdir) / "teachers" / tid
    if reuse and (out / "teacher.json").exists():
        try:
            rec = TeacherRecord.load(out / "teacher.json")
            log.info("teacher %s exists for store %s: reusing it", tid, fields.store_version)
            return rec
        except ValueError as e:  # written by an older version: train it again
            log.warning("teacher %s: unreadable record (%s); training it again", tid, e)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    spec, statics, clim, call = build_spec(cfg, run)
    seed = derive_seed(cfg.train.seed, "teacher", tid)
    device = pick_device(cfg.train.device)
    steps = max(cfg.train.rollout_steps, cfg.train.rollout_max_steps or 0)
    history = cfg.net.history
    tr = in_window(
        split.inits(fields, "train", history=history, lead_steps=steps), fields, split, cfg
    )
    va = split.inits(fields, "val", history=history, lead_steps=steps)
    if len(tr) < cfg.train.batch_size or len(va) < 1:
        raise DataError(
            f"too few complete training ({len(tr)}) or validation ({len(va)}) "
            "samples; ingest more data or shorten the gaps"
        )
    prev = load_forecaster(prev_dir) if warm_start is not None else None
    n_members = cfg.net.members
    single = ForecasterSpec(**{**asdict(spec), "net": {**spec.net, "members": 1}})
    settings = FitSettings.from_train(cfg.train).but(max_minutes=cfg.train.max_minutes / n_members)
    members, reports, linear = [], [], None
    for k in range(n_members):
        # member 0 keeps the run's seed (a one-member teacher is what it always was)
        mseed = seed if k == 0 else derive_seed(seed, "member", str(k))
        torch.manual_seed(mseed)
        m = Forecaster(single, valid=fields.valid, statics=statics)
        if prev is not None:
            n = _warm_start(m, member(prev, k % prev.members))
            log.info("member %d: warm start from %s: %d tensors", k, parent, n)
        elif cfg.net.linear_skip and cfg.net.linear_init:
            one = in_window(
                split.inits(fields, "train", history=history, lead_steps=1), fields, split, cfg
            )
            linear = init_linear_path(m, fields, one, call)
            if m.spatial is not None:
                val_one = split.inits(fields, "val", history=history, lead_steps=1)
                linear = {**linear, **init_spatial_path(m, fields, one, val_one, call)}
        m.to(device)
        desc = "teacher" if n_members == 1 else f"teacher member {k + 1}/{n_members}"
        reports.append(
            fit(
                m,
                fields,
                tr,
                va,
                settings,
                seed=mseed,
                desc=desc,
                device=device,
                clim_all=call,
                stream=cfg.stream,
            )
        )
        members.append(m.cpu())
    model = ensemble(members)
    rep = reports[0].to_dict()
    if n_members > 1:
        # the ensemble's own validation loss (no training: the loop scores its start)
        rep["members_best_val"] = [r.best_val for r in reports]
        rep["trained_best_val"] = rep["best_val"]
        rep["best_val"] = fit(
            model.to(device),
            fields,
            tr,
            va,
            settings.but(epochs=0, rollout_epochs=0),
            seed=seed,
            device=device,
            clim_all=call,
        ).best_val
        rep["wall_s"] = sum(r.wall_s for r in reports)
    # what the retrain's cost is measured against (samples per epoch, the window's inits)
    rep["train_inits"], rep["val_inits"] = len(tr), len(va)
    rep["train_window"] = [str(fields.times[tr[0]]), str(fields.times[tr[-1]])]
    model.cpu()
    save_forecaster(model, tmp / "torch")
    if clim is not None:
        clim.to_netcdf(tmp / "climatology.nc")
    onnx_path = export_onnx(model, tmp / "model.onnx")
    probe = split.inits(fields, "val", history=model.history, lead_steps=1)[:4]
    state = np.stack([fields.data[i - model.history + 1 : i + 1] for i in probe]).astype(np.float32)
    parity = onnx_parity(model, onnx_path, state, fields.hours[probe].astype(np.float32), clim)
    record = TeacherRecord(
        id=tid,
        parent=parent,
        parent_version=parent_version,
        init=why,
        store_url=fields.store_url,
        store_version=fields.store_version,
        store_range=(str(fields.times[0]), str(fields.times[-1])),
        split=split.describe(fields),
        split_index={"train": split.train, "val": split.val, "test": split.test},
        variables=fields.variables,
        step_hours=fields.step_hours,
        params=model.n_params(),
        macs=count_macs(model),
        net=cfg.net.model_dump(),
        seed=seed,
        fit=rep,
        members_fit=[r.to_dict() for r in reports] if n_members > 1 else None,
        linear_init=linear,
        onnx_parity=parity,
        onnx_bytes=onnx_path.stat().st_size,
        climatology_bytes=(tmp / "climatology.nc").stat().st_size if clim else 0,
        code_version=code_version(),
        wall_s=time.perf_counter() - t0,
        dir=str(out),
    )
    record.write(tmp / "teacher.json")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log.info(
        "teacher %s: %d params, best val %.4f after %d epochs (%.0f s)",
        tid,
        record.params,
        rep["best_val"],
        rep["epochs"],
        record.wall_s,
    )
    return record
