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
from wxmodels.utils import stable_hash

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
    """The committed store (in memory, or streamed per ``cfg.stream``) and its split.

    Kept for the next call in this process while the store's commit is unchanged: the cells
    and scoring tasks that a Dask worker runs one after another load it once (read-only:
    callers never write into the fields)."""
    store = Store(cfg.data.store, cfg.data.storage_options)
    commit = store.read_commit()
    key = stable_hash(
        [
            cfg.data.store,
            None if commit is None else commit.version,
            None if commit is None else commit.history[-1:],  # when, what: a rewrite is new
            None if commit is None else commit.revision,
            cfg.data.variables,
            cfg.data.split.model_dump(),
            cfg.stream.model_dump(),
            str(cfg.workdir),
        ],
        16,
    )
    hit = _RUN_CACHE.get(key)
    if hit is not None:
        return hit
    # read in this process: inside a Dask worker, dask would otherwise send the read's chunks
    # back to the (busy, one-thread) cluster as tasks of their own
    with dask.config.set(scheduler="synchronous"):
        fields = load_fields(
            store,
            cfg.data.variables,
            stream=cfg.stream,
            cache_dir=Path(cfg.workdir) / "cache",
        )
    run = RunData(fields, make_split(fields, cfg.data.split), store)
    _RUN_CACHE.clear()  # one store's data per process
    _RUN_CACHE[key] = run
    return run


_RUN_CACHE: dict[str, RunData] = {}


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
    record = Path(teacher_dir) / "teacher.json"
    key = f"{Path(teacher_dir).resolve()}:{record.stat().st_mtime_ns}"
    hit = _TEACHER_CACHE.get(key)
    if hit is not None:  # a worker's next cell: the teacher it already loaded (callers copy it)
        return hit
    rec = TeacherRecord.load(record)
    if rec.foreign is not None:
        from wxmodels.pipeline.foreign import ForeignTeacher

        out: tuple[Any, TeacherRecord] = (ForeignTeacher(teacher_dir), rec)
    else:
        out = (load_forecaster(Path(teacher_dir) / "torch"), rec)
    _TEACHER_CACHE.clear()
    _TEACHER_CACHE[key] = out
    return out


_TEACHER_CACHE: dict[str, tuple[Forecaster, TeacherRecord]] = {}


def spec_of(model_dir: str | Path) -> dict:
    """The ForecasterSpec JSON of a model directory (teacher, candidate or pulled version)."""
    d = Path(model_dir)
    p = d / "torch" / "model.json" if (d / "torch" / "model.json").exists() else d / "model.json"
    return json.loads(p.read_text())["_data"]
