"""What the stages hand each other, and what the report and the registry keep: typed records.

Frozen pydantic models, strict about their fields (an unknown or misspelt key is an error),
JSON round-trippable (they travel through Prefect and Dask, and are written beside their
artifacts as ``teacher.json``, ``cell.json``, ``evaluation.json``). One name means one thing:
``onnx_bytes`` is the size of a plain ONNX file, ``pack_bytes`` that of the deployable pack
(``model.wxpack``), which is the size compared and reported for candidates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from wxmodels.record import Record

__all__ = [
    "BaselineScores",
    "Candidate",
    "CellRecord",
    "Evaluation",
    "Failure",
    "Gate",
    "Incumbent",
    "IncumbentVerdict",
    "Latency",
    "MatrixResult",
    "ModelScores",
    "Promotion",
    "Record",
    "TeacherRecord",
    "TeacherSummary",
    "Verdict",
]


# -- train ------------------------------------------------------------------------------
class TeacherRecord(Record):
    """A trained teacher (``<workdir>/teachers/<id>/teacher.json``)."""

    id: str
    dir: str
    """Its directory: ``model.onnx``, ``climatology.nc``, ``torch/model.{json,safetensors}``."""
    parent: str | None = None
    """The teacher it was warm-started from (its id), if any."""
    parent_version: str | None = None
    """The registry version of that parent."""
    init: str
    """Why it started where it did (warm start, least squares, scratch)."""
    store_url: str
    store_version: str
    store_range: tuple[str, str]
    split: dict[str, Any]
    """The time split as times (``train``, ``val``, ``test``: first and last)."""
    split_index: dict[str, tuple[int, int]]
    variables: list[str]
    step_hours: float
    params: int
    macs: dict[str, int] | None = None
    """Multiply-accumulates per forecast step: ``dense`` and ``nonzero`` (sparse weights)."""
    net: dict[str, Any]
    seed: int
    fit: dict[str, Any]
    """The :class:`~wxmodels.training.loop.FitReport` of the (first) member."""
    members_fit: list[dict[str, Any]] | None = None
    linear_init: dict[str, Any] | None = None
    onnx_parity: float
    onnx_bytes: int
    climatology_bytes: int = 0
    code_version: str
    wall_s: float
    foreign: dict[str, Any] | None = None
    """A foreign ONNX teacher (``teacher.onnx``): its ``source``, ``sha256``, ``bytes`` and
    declared ``contract``; ``None`` for a trained one."""

    @property
    def onnx(self) -> str:
        return str(Path(self.dir) / "model.onnx")

    @property
    def best_val(self) -> float:
        return float(self.fit.get("best_val", float("nan")))


# -- compress ---------------------------------------------------------------------------
class CellRecord(Record):
    """A built candidate (``<workdir>/candidates/<id>/cell.json``)."""

    name: str
    id: str
    label: str
    """The recipe, ``distill+int8``."""
    method: str
    steps: list[dict[str, Any]]
    teacher: str
    store_version: str
    dir: str
    onnx: str
    pack_bytes: int
    """Deployable size: the pack, which unpacks to exactly :attr:`onnx`."""
    onnx_bytes: int
    packing: dict[str, Any]
    climatology_bytes: int = 0
    params: int
    sparsity: float
    protected: list[str] = []
    macs: dict[str, int] | None = None
    """Multiply-accumulates per forecast step: ``dense`` and ``nonzero`` (sparse weights)."""
    history: int
    parity: float
    """Largest |ONNX - torch| of the fp32 export, in each variable's std."""
    quantization_error: float | None = None
    """The same for the model after its ONNX step (int8), if it has one."""
    parity_gated: bool = True
    seed: int
    code_version: str
    wall_s: float


class MatrixResult(Record):
    """What the compress stage built, and which cells failed (``{name: one line}``)."""

    cells: list[CellRecord]
    failures: dict[str, str] = {}


# -- evaluate ---------------------------------------------------------------------------
class ModelScores(Record):
    """One model's scorecard on the test window (``scores``: scorecard JSON)."""

    name: str
    scores: dict[str, Any]
    regions: dict[str, Any] = {}
    n_inits: int
    wall_s: float
    errors: str | None = None
    """NetCDF of the per-init spatial MSE ``(model, time, lead_time)`` per variable, for the
    bootstrap behind the gates."""


class BaselineScores(Record):
    """The baselines' scorecard on the same inits."""

    scores: dict[str, Any]
    regions: dict[str, Any] = {}
    n_inits: int
    test_window: tuple[str, str]
    errors: str | None = None
    """As :attr:`ModelScores.errors`, for every baseline."""


class Latency(Record):
    """onnxruntime wall time per call (ms, median) at batch 1 and 16."""

    batch1_ms: float | None = None
    batch16_ms: float | None = None


class Gate(Record):
    """Whether a candidate passed the gates, and why not."""

    passed: bool
    reasons: list[str] = []


class Candidate(Record):
    """A scored, timed and gated cell."""

    name: str
    id: str
    label: str
    method: str
    onnx: str
    dir: str
    pack_bytes: int
    onnx_bytes: int
    params: int
    sparsity: float
    parity: float
    quantization_error: float | None = None
    climatology_bytes: int = 0
    macs: dict[str, int] | None = None
    """Multiply-accumulates per forecast step: ``dense`` and ``nonzero`` (sparse weights)."""
    latency_ms_batch1: float | None = None
    latency_ms_batch16: float | None = None
    gate: Gate
    intervals: dict[str, dict[str, list[float]]] = {}
    """Relative RMSE vs the teacher per variable and lead: ``[estimate, lower, upper]`` at the
    gates' confidence (paired block bootstrap); empty when the gates compared point values."""
    relative_rmse: float | None = None
    """Mean RMSE relative to the teacher over the gated variables and leads."""
    pareto: bool = False


class TeacherSummary(Record):
    """The teacher as the evaluation saw it."""

    id: str
    onnx: str
    onnx_bytes: int
    params: int
    climatology_bytes: int = 0
    latency_ms_batch1: float | None = None
    latency_ms_batch16: float | None = None


class Failure(Record):
    name: str
    error: str


class Incumbent(Record):
    """The registry's current teacher, pulled (verified) into the workdir."""

    version: str
    dir: str
    onnx: str
    teacher_id: str
    store_version: str
    net: dict[str, Any]
    variables: list[str]
    grid: tuple[int, int]
    comparable: bool = True
    """Whether it can be scored on the new teacher's test window (same variables, grid)."""


class Verdict(Record):
    """Whether the new teacher may replace the incumbent."""

    promote: bool
    mean_ratio: float | None = None
    worst: dict[str, Any] | None = None
    """``{variable, lead_h, ratio}`` of the largest RMSE ratio."""
    ratios: dict[str, dict[str, float]] = {}
    reasons: list[str] = []


class IncumbentVerdict(Record):
    version: str
    teacher_id: str
    store_version: str
    comparable: bool
    verdict: Verdict


class Evaluation(Record):
    """The validate stage's outcome (``<workdir>/evaluations/<id>/evaluation.json``)."""

    id: str
    dir: str
    teacher: TeacherSummary
    test_window: tuple[str, str]
    n_inits: int
    scorecard: dict[str, Any]
    regions: dict[str, Any] = {}
    candidates: list[Candidate]
    failures: list[Failure] = []
    incumbent: IncumbentVerdict | None = None
    pareto: list[str] = []
    plots: list[str] = []

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)


# -- promote ----------------------------------------------------------------------------
class Promotion(Record):
    """A version published (or found published) and the aliases pointing at it."""

    model: str
    version: str
    kind: Literal["teacher", "candidate"]
    cell: str
    aliases: list[str] = []
    moved: list[str] = []
