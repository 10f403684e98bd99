"""The latest record of each stage in the workdir, so that stages can run one at a time
(``wxc train`` after ``wxc ingest``, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wxmodels.config.cycle import CycleConfig
from wxmodels.errors import WxcError
from wxmodels.utils import read_json, write_json_atomic

__all__ = ["load_latest", "save_latest"]


def _path(config: CycleConfig, stage: str) -> Path:
    return Path(config.workdir) / "latest" / f"{stage}.json"


def save_latest(config: CycleConfig, stage: str, record: Any) -> None:
    write_json_atomic(_path(config, stage), record)


def load_latest(config: CycleConfig, stage: str, needed_by: str) -> Any:
    p = _path(config, stage)
    if not p.exists():
        raise WxcError(
            f"`wxc {needed_by}` needs a previous `{stage}` stage in {config.workdir}; "
            f"run `wxc {stage} --config ...` (or `wxc run`) first"
        )
    return read_json(p)
