"""Verification windows and the gates a candidate must pass."""

from __future__ import annotations

from pydantic import Field, field_validator

from wxmodels.config.base import Strict

__all__ = ["EvaluateConfig", "GateConfig"]


class EvaluateConfig(Strict):
    """How forecasts are verified on the test window."""

    leads_h: list[int] = Field([1, 3, 6, 12, 24], min_length=1)
    """Lead times (hours) at which skill is scored."""
    init_stride_h: int = Field(3, ge=1)
    """Hours between initialisation times in the test window."""
    latency_repeats: int = Field(50, ge=3)
    """Timed repeats for onnxruntime latency (median reported)."""
    latency_threads: int = Field(1, ge=1)
    """onnxruntime intra-op threads when timing (fixed so that runs compare)."""

    @field_validator("leads_h")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        if any(x <= 0 for x in v) or sorted(set(v)) != v:
            raise ValueError("leads_h must be positive, ascending and unique")
        return v


class GateConfig(Strict):
    """Promotion gates over the scorecard. Every rule is checked per variable and lead time."""

    max_rmse_increase: float = Field(0.05, ge=0)
    """A candidate's RMSE may exceed the teacher's by at most this fraction."""
    beat_persistence: bool = True
    """Where the teacher beats persistence, the candidate must too."""
    beat_climatology: bool = True
    """Where the teacher beats climatology, the candidate must too."""
    variables: list[str] | None = None
    """Variables the gates look at (all forecast variables when ``None``)."""
    leads_h: list[int] | None = None
    """Lead times the gates look at (all scored leads when ``None``)."""
    max_parity_error: float = Field(1e-3, gt=0)
    """Largest ONNX-vs-torch difference (in std units) for fp32 exports; int8 cells are judged
    on skill instead, their parity is reported."""
