"""Retraining without regressions: the registry's current teacher (the *incumbent*) against a
newly trained one (the *challenger*), on the same test window.

* :func:`incumbent` pulls (and verifies) the version the ``teacher`` alias points at.
* :func:`warm_start_source` decides whether a retrain warm-starts from it: only when its
  architecture matches the config and the store has moved since it was trained (warm-starting
  on the same data would only re-fit what it already fits).
* :func:`compare_teachers` is the promotion rule: the challenger replaces the incumbent only if
  its RMSE, relative to the incumbent's and averaged over the gated variables and leads, is not
  worse than ``promote.teacher_tolerance``; no single variable and lead may be worse by more than
  ``promote.teacher_max_regression`` either.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from wxmodels.config.cycle import CycleConfig
from wxmodels.errors import RegistryError
from wxmodels.pipeline.context import spec_of
from wxmodels.pipeline.records import Incumbent, TeacherRecord, Verdict
from wxmodels.registry.core import MANIFEST, Registry
from wxmodels.skill.significance import Comparison, compare

__all__ = [
    "challenge",
    "compare_teachers",
    "incumbent",
    "pull_cached",
    "verdict",
    "warm_start_source",
]

log = logging.getLogger(__name__)

ALIAS = "teacher"


def pull_cached(cfg: CycleConfig, ref: str) -> Path:
    """Pull ``ref`` (``NAME@ALIAS`` or ``NAME@VERSION``) into ``<workdir>/incumbent/<version>``
    once: verified (sha256), landed atomically, so a half-pulled copy is never used."""
    reg = Registry.for_config(cfg.promote)
    name, version = reg.resolve(ref)
    dest = Path(cfg.workdir) / "incumbent" / version
    if not (dest / MANIFEST).exists():
        tmp = dest.parent / f".{version}.{uuid.uuid4().hex}.partial"
        try:
            reg.pull(f"{name}@{version}", tmp)
            if dest.exists():  # a concurrent pull won; ours is identical
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def incumbent(cfg: CycleConfig) -> Incumbent | None:
    """The current ``teacher`` of ``cfg.name`` in the registry, pulled into the workdir.

    Returns ``{version, dir, onnx, teacher_id, store_version, net}`` or ``None`` when the
    registry has no teacher yet. A pull is verified (sha256) and lands in place atomically,
    so a half-pulled copy is never used.
    """
    reg = Registry.for_config(cfg.promote)
    version = reg.resolve_alias(cfg.name, ALIAS)
    if version is None:
        return None
    dest = pull_cached(cfg, f"{cfg.name}@{version}")
    man = json.loads((dest / MANIFEST).read_text())
    if man.get("kind") != "teacher":
        raise RegistryError(
            f"{cfg.name}@{ALIAS} points at {version}, which is a {man.get('kind')!r}, not a teacher"
        )
    spec = spec_of(dest)
    return Incumbent(
        version=version,
        dir=str(dest),
        onnx=str(dest / "model.onnx"),
        teacher_id=man["lineage"]["teacher"],
        store_version=man["lineage"]["store_version"],
        net=spec["net"],
        variables=spec["variables"],
        grid=(len(spec["lat"]), len(spec["lon"])),
    )


def warm_start_source(
    cfg: CycleConfig, store_version: str, variables: list[str], grid: tuple[int, int]
) -> tuple[Incumbent | None, str]:
    """``(incumbent or None, why)``: whether a retrain warm-starts from the registry teacher."""
    if cfg.train.init == "scratch":
        return None, "training from scratch (train.init=scratch)"
    inc = incumbent(cfg)
    if inc is None:
        return None, "the registry has no teacher yet: training from scratch"
    if inc.store_version == store_version:
        return None, (
            f"the store has not moved since teacher {inc.version} was trained: "
            "no warm start (the same teacher is reused or retrained from scratch)"
        )
    if inc.net != cfg.net.model_dump() or inc.variables != list(variables):
        return None, (
            f"teacher {inc.version} has another architecture or variables than the config: "
            "training from scratch"
        )
    if list(inc.grid) != list(grid):
        return None, f"teacher {inc.version} is on another grid: training from scratch"
    return inc, f"warm start from {cfg.name}@{inc.version} (teacher {inc.teacher_id})"


def compare_teachers(
    challenger: dict[str, Any],
    champion: dict[str, Any],
    cfg: CycleConfig,
    errors: xr.Dataset | None = None,
) -> Verdict:
    """The promotion rule on two scorecard entries (``{"rmse": {var: {lead: x}}}``). With
    ``errors`` (per-init MSEs of ``teacher`` and ``incumbent``) and ``gates.confidence`` set, a
    variable and lead counts as a regression beyond ``teacher_max_regression`` only where the
    paired bootstrap puts it beyond at that confidence (the mean ratio stays a point value:
    averaging over variables and leads is its own smoothing)."""
    variables = cfg.gates.variables or list(challenger["rmse"])
    leads = [str(h) for h in (cfg.gates.leads_h or cfg.evaluate.leads_h)]
    ratios: dict[str, dict[str, float]] = {}
    for v in variables:
        for lead in leads:
            new = challenger["rmse"].get(v, {}).get(lead)
            old = champion["rmse"].get(v, {}).get(lead)
            if new is None or old is None or not np.isfinite(new):
                ratios.setdefault(v, {})[lead] = float("inf")
            elif old > 0:
                ratios.setdefault(v, {})[lead] = float(new / old)
    flat = [(r, v, lead) for v, d in ratios.items() for lead, r in d.items()]
    if not flat:
        return Verdict(promote=True, reasons=["nothing to compare on"])
    mean = float(np.mean([r for r, _, _ in flat]))
    worst_r, worst_v, worst_l = max(flat)
    tol = cfg.promote.teacher_tolerance
    cap = cfg.promote.teacher_max_regression
    reasons = []
    if not mean <= 1 + tol:
        reasons.append(f"mean RMSE ratio to the current teacher {mean:.4f} > 1 + tolerance {tol:g}")
    for r, v, lead in sorted(flat, reverse=True):
        if r <= 1 + cap:
            break
        where = f"{v} at {lead} h: RMSE {r:.3f}x the current teacher's (max regression {cap:g})"
        c = _bootstrap(errors, cfg, v, float(lead)) if np.isfinite(r) else None
        if c is None:
            reasons.append(where)
        elif c.worse_beyond(cap):
            reasons.append(f"{where}, beyond noise: {c.describe()}")
    return Verdict(
        promote=not reasons,
        mean_ratio=mean,
        worst={"variable": worst_v, "lead_h": worst_l, "ratio": worst_r},
        ratios=ratios,
        reasons=reasons,
    )


def _bootstrap(
    errors: xr.Dataset | None, cfg: CycleConfig, variable: str, lead: float
) -> Comparison | None:
    conf = cfg.gates.confidence
    if errors is None or conf is None or variable not in errors:
        return None
    models = [str(m) for m in errors["model"].values]
    if "teacher" not in models or "incumbent" not in models:
        return None
    e = errors[variable].sel(lead_time=lead)
    return compare(
        e.sel(model="teacher").values,
        e.sel(model="incumbent").values,
        confidence=conf,
        samples=cfg.gates.bootstrap_samples,
        block=cfg.gates.bootstrap_block,
    )


def challenge(cfg: CycleConfig, teacher: TeacherRecord) -> Incumbent | None:
    """The incumbent to score beside a newly trained ``teacher`` record, or ``None`` when there
    is none or it is this very teacher. ``comparable`` is false when the two forecast other
    variables or another grid (the new one then stands alone)."""
    inc = incumbent(cfg)
    if inc is None or inc.teacher_id == teacher.id:
        return None
    spec = spec_of(teacher.dir)
    grid = (len(spec["lat"]), len(spec["lon"]))
    return inc.model_copy(
        update={"comparable": inc.variables == spec["variables"] and tuple(inc.grid) == grid}
    )


def verdict(
    cfg: CycleConfig,
    inc: Incumbent,
    scorecard: dict[str, Any],
    error: str | None = None,
    errors: xr.Dataset | None = None,
) -> Verdict:
    """:func:`compare_teachers` on an assembled scorecard (``"teacher"`` vs ``"incumbent"``);
    an incumbent that could not be scored blocks the promotion (nothing is known)."""
    if not inc.comparable:
        return Verdict(
            promote=True, reasons=[f"not comparable with {inc.version} (other variables or grid)"]
        )
    if error is not None or "incumbent" not in scorecard:
        return Verdict(
            promote=False,
            reasons=[f"the current teacher {inc.version} could not be scored: {error}"],
        )
    return compare_teachers(scorecard["teacher"], scorecard["incumbent"], cfg, errors)
