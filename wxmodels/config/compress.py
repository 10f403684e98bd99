"""The compression matrix: the cells to build from one teacher, each a chain of method steps
(torch steps first, then at most one ONNX step)."""

from __future__ import annotations

import copy
import itertools
import re
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from wxmodels.config.base import Strict
from wxmodels.config.methods import (
    ClusterConfig,
    DepthConfig,
    DistillConfig,
    DynamicConfig,
    Int8Config,
    LowRankConfig,
    PruneConfig,
    QatConfig,
    StructuredConfig,
)

__all__ = ["CellConfig", "CompressConfig", "MethodConfig", "expand_grid"]

MethodConfig = Annotated[
    PruneConfig
    | StructuredConfig
    | LowRankConfig
    | DistillConfig
    | DepthConfig
    | ClusterConfig
    | QatConfig
    | Int8Config
    | DynamicConfig,
    Field(discriminator="method"),
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class CellConfig(Strict):
    """One candidate recipe, e.g. ``distill -> structured -> int8``."""

    name: str
    """Short unique name (lowercase letters, digits, ``.``, ``_``, ``-``)."""
    steps: list[MethodConfig] = Field(min_length=1)
    protect: int = Field(0, ge=0, le=1000)
    """Leave the ``protect`` most sensitive convolutions of the teacher untouched by the torch
    steps (per-layer sensitivity on the validation window, ``compress.sensitivity``)."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"cell name {v!r}: use lowercase letters, digits, '.', '_', '-'")
        return v

    @model_validator(mode="after")
    def _order(self) -> CellConfig:
        stages = [s.stage for s in self.steps]
        if "onnx" in stages:
            first = stages.index("onnx")
            if any(s == "torch" for s in stages[first:]) or stages.count("onnx") > 1:
                raise ValueError(f"cell {self.name}: at most one ONNX step, and it comes last")
        methods = [s.method for s in self.steps]
        if "qat" in methods and methods[-1] != "int8":
            raise ValueError(
                f"cell {self.name}: a qat step trains for the int8 export; end the cell with int8"
            )
        if "qat" in methods and any(
            m not in ("qat", "int8") for m in methods[methods.index("qat") :]
        ):
            raise ValueError(f"cell {self.name}: qat must be the last torch step (before int8)")
        return self

    @property
    def cost(self) -> float:
        """A rough relative cost (epochs of training it runs), so that a matrix can start its
        longest cells first and not end with one worker busy and the others idle."""
        total = 1.0
        for step in self.steps:
            d = step.model_dump()
            total += d.get("epochs", 0) + 2 * d.get("rollout_epochs", 0)
            total += d.get("finetune_epochs", 0) * max(1, d.get("steps", 1))
            total += d.get("block_epochs", 0)
        return total

    @property
    def label(self) -> str:
        return "+".join(s.method for s in self.steps)


class CompressConfig(Strict):
    """Cells of the matrix and their budget.

    Cells are listed one by one under ``cells``, or declared as parameter grids under
    ``grid`` (expanded into ``cells`` when the config is loaded)::

        grid:
          - name: prune
            steps: [{method: prune, finetune_epochs: 2}]
            sweep: {steps.0.amount: [0.5, 0.7, 0.9]}
          - name: distill-int8
            steps: [{method: distill}, {method: int8}]
            sweep: {steps.0.width: [8, 12, 16], steps.0.depth: [1, 2]}

    give ``prune-amount-0.5``, ..., ``distill-int8-width-8-depth-1``, ... (the product of the
    sweeps; each swept path is ``steps.<index>.<field>``).
    """

    cells: list[CellConfig] = Field(min_length=1)
    max_minutes_per_fit: float = Field(4.0, gt=0, le=10_080)
    """Wall-clock budget of each fine-tuning or distillation run inside a cell."""
    reuse: bool = True
    """Reuse a cell already built for the same teacher, data and cell config."""

    @model_validator(mode="before")
    @classmethod
    def _expand_grid(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "grid" not in data:
            return data
        data = dict(data)
        cells = list(data.get("cells") or [])
        for g in data.pop("grid") or []:
            cells.extend(expand_grid(g))
        data["cells"] = cells
        return data

    @field_validator("cells")
    @classmethod
    def _unique(cls, v: list[CellConfig]) -> list[CellConfig]:
        names = [c.name for c in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"cell names must be unique: {sorted(dup)}")
        return v


def expand_grid(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells of one grid entry ``{name, steps, sweep}`` (see :class:`CompressConfig`)."""
    unknown = set(entry) - {"name", "steps", "sweep"}
    if unknown:
        raise ValueError(f"grid entry: unknown keys {sorted(unknown)} (name, steps, sweep)")
    name, steps, sweep = entry.get("name"), entry.get("steps"), entry.get("sweep") or {}
    if not name or not isinstance(steps, list) or not steps:
        raise ValueError("grid entry needs a name and a non-empty list of steps")
    paths = []
    for key, values in sweep.items():
        parts = str(key).split(".")
        if len(parts) != 3 or parts[0] != "steps" or not parts[1].isdigit():
            raise ValueError(f"grid {name}: sweep key {key!r} must be steps.<index>.<field>")
        if int(parts[1]) >= len(steps):
            raise ValueError(f"grid {name}: {key!r} names step {parts[1]} of {len(steps)}")
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid {name}: {key!r} needs a non-empty list of values")
        paths.append((int(parts[1]), parts[2], values))
    out = []
    for combo in itertools.product(*(p[2] for p in paths)):
        cell_steps = copy.deepcopy(steps)
        suffix = []
        for (i, field, _), value in zip(paths, combo, strict=True):
            cell_steps[i][field] = value
            suffix.append(f"{field}-{value}")
        out.append({"name": "-".join([name, *suffix]).lower(), "steps": cell_steps})
    return out
