"""Verification windows, regions and the gates a candidate must pass."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from wxmodels.config.base import Strict

Baseline = Literal["persistence", "climatology", "linear", "cell_linear", "ridge"]

__all__ = ["EvaluateConfig", "GateConfig", "GateRule", "RegionConfig"]


class RegionConfig(Strict):
    """A verification region: a box, optionally land points only."""

    lat_bounds: tuple[float, float] | None = None
    lon_bounds: tuple[float, float] | None = None
    land_only: bool = False
    """Keep only land points (the store's land-sea mask > 0.5; without one, the points that
    have data, which for land-only data sets such as WFDE5 is the land)."""


class EvaluateConfig(Strict):
    """How forecasts are verified on the test window."""

    leads_h: list[int] = Field([1, 3, 6, 12, 24], min_length=1)
    """Lead times (hours) at which skill is scored."""
    init_stride_h: int = Field(3, ge=1, le=24 * 366)
    """Hours between initialisation times in the test window."""
    max_inits: int | None = Field(None, ge=1)
    """At most this many of those inits, evenly spaced over the test window (scoring's time
    then stays the same however long the window is: global grids)."""
    block_mb: float = Field(128.0, gt=0, le=1_000_000)
    """Memory for one block of inits while scoring: inits are forecast and scored a block at
    a time (truth, climatology, every forecast and the metrics' temporaries, estimated at
    ten forecast-sized arrays more than the forecasts), the per-init scores accumulated; the
    scores equal those of all inits at once. Small grids score in one block."""
    climatology: Literal["auto", "store", "train"] = "auto"
    """Climatology of the ACC anomalies and of the climatology and regression baselines: the
    one fitted on the training window (``train``, and ``auto``: a climatology that has seen
    the test window would leak it into the baselines, as WeatherBench 2 scores 2020 against
    1990-2019), or the store's (all committed data)."""
    baselines: list[Baseline] = [
        "persistence",
        "climatology",
        "linear",
        "cell_linear",
        "ridge",
    ]
    """Baselines scored on the same inits and leads, all fitted on the training window:
    ``linear`` a regression on anomalies pooled over cells, ``cell_linear`` one per cell,
    ``ridge`` a spatial ridge regression (every cell -> every cell, strength chosen on the
    validation window); see :mod:`wxmodels.skill.baselines`."""
    regions: dict[str, RegionConfig] = {}
    """Extra verification regions (the whole domain, ``all``, is always scored)."""
    seeps_dry_mm: float = Field(0.1, gt=0)
    """SEEPS dry threshold: precipitation over one step below this (mm) is dry."""
    latency_repeats: int = Field(50, ge=3, le=100_000)
    """Timed repeats for onnxruntime latency (median reported)."""
    latency_threads: int = Field(1, ge=1, le=1024)
    """onnxruntime intra-op threads when timing (fixed so that runs compare)."""

    @field_validator("leads_h")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        if any(x <= 0 for x in v) or sorted(set(v)) != v:
            raise ValueError("leads_h must be positive, ascending and unique")
        return v


class GateRule(Strict):
    """An extra rule, for some variables, leads and a region. Unset limits are not checked."""

    variables: list[str] | None = None
    """Variables it applies to (all when ``None``)."""
    leads_h: list[int] | None = None
    """Leads it applies to (all when ``None``)."""
    region: str = "all"
    max_rmse: float | None = None
    """Absolute RMSE limit (the variable's units)."""
    min_acc: float | None = None
    """Absolute ACC floor."""
    max_rmse_increase: float | None = None
    """RMSE relative to the teacher (fraction), replacing the default for these cases."""
    max_seeps: float | None = None
    """SEEPS limit (precipitation)."""
    beat: list[Baseline] = []
    """Baselines the candidate must beat here, whatever the teacher does."""


class GateConfig(Strict):
    """Promotion gates over the scorecard. Every rule is checked per variable and lead time."""

    max_rmse_increase: float = Field(0.05, ge=0)
    """A candidate's RMSE may exceed the teacher's by at most this fraction."""
    beat_persistence: bool = True
    """Where the teacher beats persistence, the candidate must too."""
    beat_climatology: bool = True
    """Where the teacher beats climatology, the candidate must too."""
    beat_linear: bool = False
    """Where the teacher beats the linear-regression baseline, the candidate must too."""
    beat_cell_linear: bool = False
    """The same for the per-cell regression."""
    beat_ridge: bool = False
    """The same for the spatial ridge regression."""
    confidence: float | None = Field(0.95, gt=0.5, lt=1)
    """Confidence of the paired block bootstrap behind every comparison (teacher vs baseline,
    candidate vs teacher): a candidate fails a tolerance only where it is worse beyond it at
    this confidence, and "the teacher beats a baseline" counts only where it does so at this
    confidence. ``None``: compare point estimates."""
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    """Bootstrap resamples (a fixed seed: the same scores give the same verdict)."""
    bootstrap_block: int | None = Field(None, ge=1, le=100_000)
    """Inits per bootstrap block; ``None``: from the autocorrelation of the error
    differences, and never fewer than the inits the longest lead spans."""
    variables: list[str] | None = None
    """Variables the gates look at (all forecast variables when ``None``)."""
    leads_h: list[int] | None = None
    """Lead times the gates look at (all scored leads when ``None``)."""
    max_latency_ratio: float | None = Field(1.0, gt=0)
    """A candidate's onnxruntime latency at batch 1 may be at most this multiple of the
    teacher's (a smaller model that runs slower is no win on the edge; dynamic int8 on convs
    measured 5x slower); ``None``: latency is not gated."""
    max_parity_error: float = Field(1e-3, gt=0)
    """Largest ONNX-vs-torch difference (in std units) for fp32 exports; int8 cells are judged
    on skill instead, their parity is reported."""
    rules: list[GateRule] = []
    """Extra rules (absolute limits, regions, per-variable tolerances)."""

    @model_validator(mode="after")
    def _rules(self) -> GateConfig:
        for r in self.rules:
            if (
                all(
                    getattr(r, k) is None
                    for k in ("max_rmse", "min_acc", "max_rmse_increase", "max_seeps")
                )
                and not r.beat
            ):
                raise ValueError("a gate rule needs at least one limit or baseline to beat")
        return self
