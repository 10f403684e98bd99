"""Loading what several stages share: the store's fields, the split, model directories."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import torch

from wxmodels.config.cycle import CycleConfig
from wxmodels.data.fields import Fields, Split, load_fields, make_split
from wxmodels.data.lazy import ClimArray
from wxmodels.data.stats import Climatology
from wxmodels.data.store import Store
from wxmodels.nets.forecaster import Forecaster, load_forecaster
from wxmodels.pipeline.records import TeacherRecord

__all__ = [
    "RunData",
    "clim_all",
    "load_run_data",
    "load_teacher",
    "model_climatology",
    "set_threads",
]

log = logging.getLogger(__name__)


def set_threads(n: int) -> None:
    """Fix torch's CPU threads (tasks share a machine with other tasks)."""
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


@dataclass
class RunData:
    fields: Fields
    split: Split
    store: Store


def load_run_data(cfg: CycleConfig) -> RunData:
    """The committed store in memory and its split (as configured)."""
    store = Store(cfg.data.store, cfg.data.storage_options)
    # read in this process: inside a Dask worker, dask would otherwise send the read's chunks
    # back to the (busy, one-thread) cluster as tasks of their own
    with dask.config.set(scheduler="synchronous"):
        fields = load_fields(
            store,
            cfg.data.variables,
            stream=cfg.stream,
            cache_dir=Path(cfg.workdir) / "cache",
        )
    return RunData(fields, make_split(fields, cfg.data.split), store)


def model_climatology(model_dir: str | Path) -> Climatology | None:
    """The input climatology shipped with a model (``None`` for models without one)."""
    p = Path(model_dir) / "climatology.nc"
    return Climatology.from_netcdf(p) if p.exists() else None


def clim_all(fields: Fields, clim: Climatology | None) -> Any:
    """The climatology at every time of ``fields`` ``(T, V, H, W)``, in their variable order
    (evaluated as it is indexed, a :class:`~wxmodels.data.lazy.ClimArray`, when the fields
    are streamed)."""
    if clim is None:
        return None
    sel = clim.select(fields.variables)
    if fields.streamed:
        return ClimArray(
            lambda h: sel.evaluate(h, fields.valid),
            fields.hours,
            len(fields.variables),
            fields.valid.shape,
        )
    return sel.evaluate(fields.hours, fields.valid)


def load_teacher(teacher_dir: str | Path) -> tuple[Forecaster, TeacherRecord]:
    """The teacher as torch sees it: its weights, or for a foreign ONNX teacher a module that
    runs the file (:class:`~wxmodels.pipeline.foreign.ForeignTeacher`)."""
    rec = TeacherRecord.load(Path(teacher_dir) / "teacher.json")
    if rec.foreign is not None:
        from wxmodels.pipeline.foreign import ForeignTeacher

        return ForeignTeacher(teacher_dir), rec  # type: ignore[return-value]
    return load_forecaster(Path(teacher_dir) / "torch"), rec


def spec_of(model_dir: str | Path) -> dict:
    """The ForecasterSpec JSON of a model directory (teacher, candidate or pulled version)."""
    d = Path(model_dir)
    p = d / "torch" / "model.json" if (d / "torch" / "model.json").exists() else d / "model.json"
    return json.loads(p.read_text())["_data"]
