"""Loading what several stages share: the store's fields, the split, the teacher's artifacts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from wxmodels.config.cycle import CycleConfig
from wxmodels.data.stats import ClimAccumulator
from wxmodels.data.store import Store
from wxmodels.nets.forecaster import Forecaster, load_forecaster
from wxmodels.training.data import Fields, Split, load_fields, make_split
from wxmodels.utils import read_json

__all__ = ["RunData", "load_climatology", "load_run_data", "save_climatology", "set_threads"]

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


def save_climatology(acc: ClimAccumulator, path: str | Path, variables: list[str]) -> Path:
    """Write a climatology accumulator (its normal equations) to NetCDF."""
    arrays = acc.to_arrays()
    ds = xr.Dataset(
        {
            k: (tuple(f"{k}_{i}" for i in range(np.ndim(v))), np.asarray(v))
            for k, v in arrays.items()
        },
        attrs={
            "variables": list(variables),
            "description": "harmonic climatology of the teacher's training "
            "window (wxmodels.data.stats)",
        },
    )
    ds.to_netcdf(path)
    return Path(path)


def load_climatology(teacher_dir: str | Path) -> ClimAccumulator:
    """The training-window climatology saved with the teacher."""
    with xr.open_dataset(Path(teacher_dir) / "climatology.nc") as ds:
        return ClimAccumulator.from_arrays({k: ds[k].values for k in ds.data_vars})


def load_teacher(teacher_dir: str | Path) -> tuple[Forecaster, dict]:
    rec = read_json(Path(teacher_dir) / "teacher.json")
    return load_forecaster(Path(teacher_dir) / "torch"), rec
