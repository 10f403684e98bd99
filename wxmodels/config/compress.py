"""The compression matrix: the cells to build from one teacher."""

from __future__ import annotations

from pydantic import Field, field_validator

from wxmodels.compress.cell import CellConfig
from wxmodels.config.base import Strict

__all__ = ["CompressConfig"]


class CompressConfig(Strict):
    """Cells of the matrix and their budget."""

    cells: list[CellConfig] = Field(min_length=1)
    max_minutes_per_fit: float = Field(4.0, gt=0)
    """Wall-clock budget of each fine-tuning or distillation run inside a cell."""
    reuse: bool = True
    """Reuse a cell already built for the same teacher, data and cell config."""

    @field_validator("cells")
    @classmethod
    def _unique(cls, v: list[CellConfig]) -> list[CellConfig]:
        names = [c.name for c in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"cell names must be unique: {sorted(dup)}")
        return v
