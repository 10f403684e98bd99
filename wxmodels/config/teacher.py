"""A teacher that is only an ONNX file (Pangu-Weather, FuXi, FengWu and many others are
distributed that way): where it is and what its inputs and outputs mean."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from wxmodels.config.base import Strict

__all__ = ["ForeignTeacherConfig"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ForeignTeacherConfig(Strict):
    """``teacher.onnx``: register a foreign ONNX forecaster as the teacher, without torch code.

    The contract the file must keep (checked on a sample from the store when it is registered):
    ``state_input`` takes ``(batch, history, len(variables), lat, lon)`` float32 in the store's
    canonical units, channels in the order of ``variables``, latitude ascending, on the store's
    grid; the output (``output``, or the only one) is ``(batch, len(variables), lat, lon)``,
    the same variables ``step_hours`` later. ``time_input``, when the model has one, gets hours
    since 1970-01-01 of the newest state ``(batch,)``.
    """

    onnx: str
    """Path or URL of the ``.onnx`` file (local, ``s3://``, ``https://``: anything fsspec opens)."""
    sha256: str | None = None
    """Expected digest of the file: a different file is refused before anything runs."""
    variables: list[str] = Field(min_length=1)
    """Canonical variable names, in the model's channel order."""
    history: int = Field(1, ge=1, le=16)
    """Past states the model takes."""
    step_hours: float = Field(gt=0)
    """Hours one call advances."""
    state_input: str = "state"
    time_input: str | None = None
    output: str | None = None

    @field_validator("sha256")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not _SHA256.match(v.lower()):
            raise ValueError("sha256 must be 64 hexadecimal digits")
        return v.lower() if v else v

    @field_validator("variables")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from wxmodels.schema import get_variable

        for name in v:
            try:
                get_variable(name)
            except KeyError as e:
                raise ValueError(e.args[0]) from None
        if len(set(v)) != len(v):
            raise ValueError("teacher.variables lists a variable twice")
        return v

    def contract(self) -> dict[str, object]:
        """What the registry records beside the file's digest."""
        return self.model_dump(exclude={"onnx", "sha256"})
