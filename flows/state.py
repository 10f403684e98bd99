"""The latest record of each stage in the workdir, so that stages can run one at a time
(``wxc train`` after ``wxc ingest``, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from wxmodels.config.cycle import CycleConfig
from wxmodels.errors import WxcError
from wxmodels.utils import write_json_atomic

__all__ = ["load_latest", "save_latest"]

T = TypeVar("T")


def _path(config: CycleConfig, stage: str) -> Path:
    return Path(config.workdir) / "latest" / f"{stage}.json"


def save_latest(config: CycleConfig, stage: str, record: object) -> None:
    """Keep a stage's record (a :class:`~wxmodels.record.Record` or a list of them)."""
    data = TypeAdapter(type(record)).dump_python(record, mode="json")
    write_json_atomic(_path(config, stage), data)


def load_latest(config: CycleConfig, stage: str, kind: type[T] | object, needed_by: str) -> T:
    """The latest record of ``stage``, validated as ``kind`` (a record type, or e.g.
    ``list[Promotion]``)."""
    p = _path(config, stage)
    if not p.exists():
        raise WxcError(
            f"`wxc {needed_by}` needs a previous `{stage}` stage in {config.workdir}; "
            f"run `wxc {stage} --config ...` (or `wxc run`) first"
        )
    try:
        return TypeAdapter(kind).validate_json(p.read_text())
    except ValidationError:
        raise WxcError(
            f"{p} was written by another version of wxcompress: run `wxc {stage}` again"
        ) from None
