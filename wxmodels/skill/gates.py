"""Promotion gates over a scorecard, with the reasons written down when they fail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

from wxmodels.config.evaluate import GateConfig
from wxmodels.schema import LEAD, TIME
from wxmodels.skill.significance import Comparison, compare

__all__ = ["GateResult", "check_gates"]

BASELINES = ("persistence", "climatology", "linear", "cell_linear", "ridge")


@dataclass
class GateResult:
    """Pass/fail and one reason per failed check."""

    passed: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _get(sc: xr.DataArray, model: str, metric: str, variable: str, lead: float) -> float:
    if (
        model not in sc["model"].values
        or variable not in sc["variable"].values
        or metric not in sc["metric"].values
    ):
        return float("nan")
    return float(sc.sel(model=model, metric=metric, variable=variable, lead_time=float(lead)))


def check_gates(
    sc: xr.DataArray,
    candidate: str,
    cfg: GateConfig,
    *,
    teacher: str = "teacher",
    parity: float | None = None,
    parity_gated: bool = True,
    regions: Mapping[str, xr.DataArray] | None = None,
    errors: xr.Dataset | None = None,
    intervals: dict | None = None,
) -> GateResult:
    """Check ``candidate`` against the teacher and the baselines, per variable and lead.

    Default rules (per gated variable and lead, whole domain):

    * RMSE at most ``teacher * (1 + max_rmse_increase)``;
    * where the teacher's RMSE beats persistence / climatology (/ linear regression, when
      ``beat_linear``), the candidate's must too;
    * scores must be finite; for fp32 exports, ONNX-vs-torch parity within
      ``max_parity_error``.

    With ``errors`` (per-init MSEs, :func:`~wxmodels.pipeline.evaluate.load_errors`) and
    ``cfg.confidence`` set, both comparisons are paired block-bootstrap tests
    (:mod:`.significance`): the candidate fails the tolerance only where it is worse beyond it
    at the confidence, and a baseline counts as beaten by the teacher only where the teacher
    is better at the confidence; the candidate then fails only where it is worse than that
    baseline at the confidence. The reasons print the intervals; ``intervals`` (a dict, when
    given) receives ``{variable: {lead: [estimate, lower, upper]}}`` of candidate vs teacher.

    Then every :class:`~wxmodels.config.evaluate.GateRule` (absolute RMSE, ACC, SEEPS limits,
    per-variable tolerances, baselines to beat regardless of the teacher, regions).
    """
    cards = {"all": sc, **(regions or {})}
    variables = cfg.variables or [str(v) for v in sc["variable"].values]
    leads: list[float] = [float(x) for x in (cfg.leads_h or sc["lead_time"].values)]
    reasons: list[str] = []
    unknown = [v for v in variables if v not in sc["variable"].values]
    if unknown:
        reasons.append(f"gated variables not forecast: {unknown}")
    overrides: dict[tuple[str, float], float] = {}
    for rule in cfg.rules:
        if rule.max_rmse_increase is not None and rule.region == "all":
            for v in rule.variables or variables:
                for lead in rule.leads_h or leads:
                    overrides[(v, float(lead))] = rule.max_rmse_increase
    beats = {
        "persistence": cfg.beat_persistence,
        "climatology": cfg.beat_climatology,
        "linear": cfg.beat_linear,
        "cell_linear": cfg.beat_cell_linear,
        "ridge": cfg.beat_ridge,
    }
    tested = errors is not None and cfg.confidence is not None

    def test(a: str, b: str, v: str, lead: float) -> Comparison | None:
        if not tested or errors is None or cfg.confidence is None:
            return None
        if a not in errors["model"].values or b not in errors["model"].values:
            return None
        e = errors[v].sel({LEAD: _lead_coord(errors, lead)})
        return compare(
            e.sel(model=a).values,
            e.sel(model=b).values,
            confidence=float(cfg.confidence),
            samples=cfg.bootstrap_samples,
            block=cfg.bootstrap_block,
            min_block=_min_block(e, lead),
        )

    for v in variables:
        if v in unknown:
            continue
        for lead in leads:
            where = f"{v} @{lead:g}h"
            c, t = _get(sc, candidate, "rmse", v, lead), _get(sc, teacher, "rmse", v, lead)
            if not np.isfinite(c):
                reasons.append(f"{where}: RMSE is not finite")
                continue
            tol = overrides.get((v, float(lead)), cfg.max_rmse_increase)
            ct = test(candidate, teacher, v, lead)
            if ct is not None and intervals is not None:
                intervals.setdefault(v, {})[f"{lead:g}"] = ct.to_list()
            if ct is not None and ct.worse_beyond(tol):
                reasons.append(
                    f"{where}: RMSE {c:.4g} > teacher {t:.4g} +{tol:.0%} beyond noise "
                    f"({ct.describe()})"
                )
            elif ct is None and c > t * (1 + tol):
                reasons.append(f"{where}: RMSE {c:.4g} > teacher {t:.4g} +{tol:.0%}")
            for base, on in beats.items():
                b = _get(sc, base, "rmse", v, lead)
                if not (on and np.isfinite(b)):
                    continue
                tb = test(teacher, base, v, lead)
                if tb is None:
                    if t < b and not c < b:
                        reasons.append(
                            f"{where}: RMSE {c:.4g} does not beat {base} {b:.4g} "
                            f"(the teacher does: {t:.4g})"
                        )
                    continue
                if not tb.better:
                    continue  # the teacher does not beat it beyond noise: nothing to keep
                cb = test(candidate, base, v, lead)
                if cb is not None and cb.worse:
                    reasons.append(
                        f"{where}: RMSE {c:.4g} worse than {base} {b:.4g} beyond noise "
                        f"({cb.describe()}), where the teacher beats it ({tb.describe()})"
                    )
    for rule in cfg.rules:
        card = cards.get(rule.region)
        if card is None:
            reasons.append(f"gate rule for unknown region {rule.region!r}")
            continue
        tag = "" if rule.region == "all" else f" [{rule.region}]"
        for v in rule.variables or variables:
            for lead in rule.leads_h or leads:
                where = f"{v} @{lead:g}h{tag}"
                r = _get(card, candidate, "rmse", v, lead)
                a = _get(card, candidate, "acc", v, lead)
                s = _get(card, candidate, "seeps", v, lead)
                if rule.max_rmse is not None and not r <= rule.max_rmse:
                    reasons.append(f"{where}: RMSE {r:.4g} > limit {rule.max_rmse:g}")
                if rule.min_acc is not None and not a >= rule.min_acc:
                    reasons.append(f"{where}: ACC {a:.3g} < floor {rule.min_acc:g}")
                if rule.max_seeps is not None and not s <= rule.max_seeps:
                    reasons.append(f"{where}: SEEPS {s:.3g} > limit {rule.max_seeps:g}")
                if rule.max_rmse_increase is not None and rule.region != "all":
                    t = _get(card, teacher, "rmse", v, lead)
                    if r > t * (1 + rule.max_rmse_increase):
                        reasons.append(
                            f"{where}: RMSE {r:.4g} > teacher {t:.4g} +{rule.max_rmse_increase:.0%}"
                        )
                for base in rule.beat:
                    b = _get(card, base, "rmse", v, lead)
                    if np.isfinite(b) and not r < b:
                        reasons.append(f"{where}: RMSE {r:.4g} does not beat {base} {b:.4g}")
    if parity is not None and parity_gated and not parity <= cfg.max_parity_error:
        reasons.append(f"ONNX parity {parity:.3g} std > {cfg.max_parity_error:g}")
    return GateResult(not reasons, list(dict.fromkeys(reasons)))


def _lead_coord(errors: xr.Dataset, lead: float) -> object:
    """The ``lead_time`` label of ``lead`` hours in ``errors`` (hours as numbers, or
    timedeltas)."""
    values = errors[LEAD].values
    if np.issubdtype(values.dtype, np.timedelta64):
        return np.timedelta64(round(lead * 3600), "s")
    return float(lead)


def _min_block(e: xr.DataArray, lead: float) -> int:
    """Inits a lead spans: forecasts closer than the lead share verifying times."""
    t = e[TIME].values
    if len(t) < 2:
        return 1
    stride_h = float(np.median(np.diff(t)) / np.timedelta64(1, "h"))
    return max(1, int(np.ceil(lead / stride_h))) if stride_h > 0 else 1


def check_latency(
    gate: GateResult, candidate_ms: float | None, teacher_ms: float | None, ratio: float | None
) -> GateResult:
    """``gate`` with the latency rule added: batch-1 latency at most ``ratio`` x the teacher's
    (not checked when ``ratio`` is None or a latency is missing)."""
    if ratio is None or not candidate_ms or not teacher_ms or candidate_ms <= ratio * teacher_ms:
        return gate
    return GateResult(
        passed=False,
        reasons=[
            *gate.reasons,
            f"slower than the teacher at batch 1: {candidate_ms:.3f} ms vs {teacher_ms:.3f} ms "
            f"(gates.max_latency_ratio {ratio:g})",
        ],
    )
