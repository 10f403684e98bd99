"""The base of every record a stage hands on (see :mod:`wxmodels.pipeline.records`)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict

from wxmodels.utils import write_json_atomic

__all__ = ["Record"]


class Record(BaseModel):
    """Frozen, no unknown fields, JSON in and out."""

    # scorecards hold NaN (SEEPS outside precipitation) and infinities (a failed score): keep
    # them as JSON's NaN / Infinity constants, as json.dumps writes them
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    def write(self, path: str | Path) -> Path:
        """Write the record as JSON, atomically."""
        return write_json_atomic(path, self.model_dump(mode="json"))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return cls.model_validate_json(Path(path).read_text())

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")
