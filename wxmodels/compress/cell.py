"""A matrix cell: a named chain of method steps (torch steps first, then at most one ONNX step)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from wxmodels.compress.cluster import ClusterConfig
from wxmodels.compress.distill import DistillConfig
from wxmodels.compress.dynamic import DynamicConfig
from wxmodels.compress.int8 import Int8Config
from wxmodels.compress.lowrank import LowRankConfig
from wxmodels.compress.prune import PruneConfig
from wxmodels.compress.qat import QatConfig
from wxmodels.compress.registry import get_method
from wxmodels.compress.structured import StructuredConfig
from wxmodels.config.base import Strict

__all__ = ["CellConfig", "MethodConfig"]

MethodConfig = Annotated[
    PruneConfig
    | StructuredConfig
    | LowRankConfig
    | DistillConfig
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
        stages = [get_method(s).stage for s in self.steps]
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
        return total

    @property
    def label(self) -> str:
        return "+".join(s.method for s in self.steps)
