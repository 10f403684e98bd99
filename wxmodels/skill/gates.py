"""Promotion gates over a scorecard, with the reasons written down when they fail."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

from wxmodels.config.evaluate import GateConfig

__all__ = ["GateResult", "check_gates"]


@dataclass
class GateResult:
    """Pass/fail and one reason per failed check."""

    passed: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def check_gates(
    sc: xr.DataArray,
    candidate: str,
    cfg: GateConfig,
    *,
    teacher: str = "teacher",
    persistence: str = "persistence",
    climatology: str = "climatology",
    parity: float | None = None,
    parity_gated: bool = True,
) -> GateResult:
    """Check ``candidate`` against the teacher and the baselines, per variable and lead.

    Rules (each per gated variable and lead):

    * RMSE at most ``teacher * (1 + max_rmse_increase)``;
    * where the teacher's RMSE beats persistence (climatology), the candidate's must too;
    * scores must be finite;
    * for fp32 exports, ONNX-vs-torch parity within ``max_parity_error``.
    """
    rmse = sc.sel(metric="rmse")
    variables = cfg.variables or [str(v) for v in rmse["variable"].values]
    leads = cfg.leads_h or [float(x) for x in rmse["lead_time"].values]
    reasons: list[str] = []
    unknown = [v for v in variables if v not in rmse["variable"].values]
    if unknown:
        reasons.append(f"gated variables not forecast: {unknown}")
    for v in variables:
        if v in unknown:
            continue
        for lead in leads:

            def r(model: str, v=v, lead=lead) -> float:
                return float(rmse.sel(model=model, variable=v, lead_time=float(lead)))

            c, t = r(candidate), r(teacher)
            where = f"{v} @{lead:g}h"
            if not np.isfinite(c):
                reasons.append(f"{where}: RMSE is not finite")
                continue
            limit = t * (1 + cfg.max_rmse_increase)
            if c > limit:
                reasons.append(
                    f"{where}: RMSE {c:.4g} > teacher {t:.4g} +{cfg.max_rmse_increase:.0%}"
                )
            for flag, base in (
                (cfg.beat_persistence, persistence),
                (cfg.beat_climatology, climatology),
            ):
                if not flag or base not in rmse["model"].values:
                    continue
                b = r(base)
                if t < b and not c < b:
                    reasons.append(
                        f"{where}: RMSE {c:.4g} does not beat {base} {b:.4g} "
                        f"(the teacher does: {t:.4g})"
                    )
    if parity is not None and parity_gated and not parity <= cfg.max_parity_error:
        reasons.append(f"ONNX parity {parity:.3g} std > {cfg.max_parity_error:g}")
    return GateResult(not reasons, reasons)
