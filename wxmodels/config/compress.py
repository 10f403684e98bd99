"""The compression matrix: the cells to build from one teacher."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from pydantic import Field, field_validator, model_validator

from wxmodels.compress.cell import CellConfig
from wxmodels.config.base import Strict

__all__ = ["CompressConfig", "expand_grid"]


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
