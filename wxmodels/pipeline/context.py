"""Loading what several stages share: the store's fields, the split, the teacher's artifacts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from wxmodels.config.cycle import CycleConfig
from wxmodels.data.store import Store
from wxmodels.nets.forecaster import Forecaster, load_forecaster
from wxmodels.training.data import Fields, Split, load_fields, make_split
from wxmodels.utils import read_json

__all__ = ["RunData", "load_climatology", "load_run_data", "set_threads"]

log = logging.getLogger(__name__)


def set_threads(n: int) -> None:
    """Fix torch's CPU threads (tasks share a machine with other tasks)."""
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


@dataclass
class RunData:
    fields: Fields
    split: Split


def load_run_data(cfg: CycleConfig) -> RunData:
    """The committed store in memory and its split (as configured)."""
    store = Store(cfg.data.store, cfg.data.storage_options)
    fields = load_fields(store, cfg.data.variables)
    return RunData(fields, make_split(fields, cfg.data.split))


def load_climatology(teacher_dir: str | Path) -> np.ndarray:
    """The hour-of-day climatology ``(24, V, H, W)`` saved with the teacher."""
    with xr.open_dataarray(Path(teacher_dir) / "climatology.nc") as da:
        return da.values.astype(np.float32)


def load_teacher(teacher_dir: str | Path) -> tuple[Forecaster, dict]:
    rec = read_json(Path(teacher_dir) / "teacher.json")
    return load_forecaster(Path(teacher_dir) / "torch"), rec
