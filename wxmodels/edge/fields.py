"""Analyses in and forecasts out for the edge runtime.

Input: a NumPy archive (``.npz``) with ``fields`` ``(T, V, H, W)``, ``variables`` ``(V,)``
and ``time`` ``(T,)`` (ISO 8601 strings or ``datetime64``), optionally ``latitude`` and
``longitude``; or, where xarray is installed, a NetCDF file or Zarr store as ``wxc predict``
reads them. Output: ``.npz`` (always available) or CF NetCDF (``.nc``, needs ``netCDF4``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wxmodels.edge.model import EdgeModel
from wxmodels.errors import DataError, PathError
from wxmodels.schema import get_variable

__all__ = ["Analyses", "read_analyses", "write_forecast"]


@dataclass
class Analyses:
    """The model's input for one initialisation: ``state`` ``(1, history, V, H, W)``."""

    state: np.ndarray
    init: np.datetime64

    @property
    def init_hours(self) -> np.ndarray:
        return np.array([self.init.astype("datetime64[s]").astype(np.int64) / 3600.0])


def _times(raw: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(raw).astype("datetime64[s]")
    except ValueError as e:
        raise DataError(f"input times are not ISO 8601 dates: {e}") from None


def read_analyses(path: str | Path, model: EdgeModel, start: str | None = None) -> Analyses:
    """The ``history`` analyses ending at ``start`` (default: the last time in the file)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"input {path} does not exist")
    if path.suffix != ".npz":
        return _read_with_xarray(path, model, start)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"fields", "variables", "time"} - set(z.files)
            if missing:
                raise DataError(f"{path}: no {', '.join(sorted(missing))} in the archive")
            fields, names, times = z["fields"], [str(v) for v in z["variables"]], _times(z["time"])
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npz archive: {e}") from None
    if fields.ndim != 4 or fields.shape[:2] != (len(times), len(names)):
        raise DataError(f"{path}: fields {fields.shape} do not match (time, variable, lat, lon)")
    absent = [v for v in model.variables if v not in names]
    if absent:
        raise DataError(f"{path}: the model needs {', '.join(absent)}, which the file lacks")
    if np.any(np.diff(times.astype(np.int64)) <= 0):
        raise DataError(f"{path}: the times are not strictly increasing")
    t0 = times[-1] if start is None else _times(np.array([start]))[0]
    step = np.timedelta64(round(model.step_hours * 3600), "s")
    want = t0 - step * np.arange(model.history - 1, -1, -1)
    where = {t: i for i, t in enumerate(times)}
    gone = [str(t) for t in want if t not in where]
    if gone:
        raise DataError(
            f"{path}: the model needs the analyses at {', '.join(gone)} "
            f"({model.history} states {model.step_hours:g} h apart ending at {t0})"
        )
    rows = [where[t] for t in want]
    cols = [names.index(v) for v in model.variables]
    state = fields[rows][:, cols].astype(np.float32)[None]
    if not np.isfinite(state).any():
        raise DataError(f"{path}: the input fields are all NaN")
    return Analyses(state=state, init=t0)


def _read_with_xarray(path: Path, model: EdgeModel, start: str | None) -> Analyses:
    try:
        import pandas as pd

        from wxmodels.predict import load_inputs
    except ImportError:
        raise DataError(
            f"{path}: reading NetCDF or Zarr needs xarray (pip install xarray netCDF4); "
            "or give the analyses as a .npz archive"
        ) from None
    if start is None:
        raise DataError("--start is needed with a NetCDF or Zarr input")
    t0 = pd.Timestamp(start)
    ds = load_inputs(str(path), model.variables, t0, model.history, model.step_hours)
    state = np.stack([ds[v].values for v in model.variables], axis=1).astype(np.float32)[None]
    return Analyses(state=state, init=np.datetime64(t0.to_datetime64(), "s"))


def write_forecast(
    out: str | Path, model: EdgeModel, analyses: Analyses, leads_h: list[float], data: np.ndarray
) -> Path:
    """Write ``data`` ``(L, V, H, W)`` (one initialisation) as ``.npz`` or ``.nc``; the file
    appears whole (written beside it, then renamed) and never replaces what is not a file."""
    out = Path(out)
    if out.exists() and not out.is_file():
        raise PathError(f"{out} exists and is not a file: not replaced")
    leads = np.array(sorted({float(x) for x in leads_h}), np.float64)
    valid = analyses.init + (leads * 3600).astype("timedelta64[s]")
    man = model.manifest
    meta = {
        "model": model.ref,
        "model_sha256": man["files"]["model.onnx"]["sha256"],
        "synthetic": bool(man.get("synthetic")),
    }
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    if out.suffix == ".npz":
        with open(tmp, "wb") as f:
            np.savez(
                f,
                forecast=data.astype(np.float32),
                variables=np.array(model.variables),
                units=np.array([get_variable(v).units for v in model.variables]),
                lead_hours=leads,
                init_time=np.array(str(analyses.init)),
                valid_time=valid.astype(str),
                latitude=model.lat,
                longitude=model.lon,
                meta=np.array(json.dumps(meta)),
            )
    elif out.suffix == ".nc":
        _write_netcdf(tmp, model, analyses, leads, valid, data, meta)
    else:
        raise DataError(f"output {out}: .npz or .nc")
    tmp.replace(out)
    return out


def _write_netcdf(
    tmp: Path,
    model: EdgeModel,
    analyses: Analyses,
    leads: np.ndarray,
    valid: np.ndarray,
    data: np.ndarray,
    meta: dict,
) -> None:
    try:
        import netCDF4
    except ImportError:
        raise DataError(
            "NetCDF output needs the netCDF4 package (pip install netCDF4); or write .npz"
        ) from None
    epoch = np.datetime64("1970-01-01T00:00:00", "s")
    with netCDF4.Dataset(tmp, "w") as nc:
        nc.Conventions = "CF-1.8"
        nc.title = f"wxcompress forecast from {meta['model']}"
        nc.source = meta["model"]
        nc.model_sha256 = meta["model_sha256"]
        nc.model_runtime = "onnx (wxc-edge)"
        if meta["synthetic"]:
            nc.comment = "model trained on SYNTHETIC data (not real weather)"
        nc.createDimension("lead_time", len(leads))
        nc.createDimension("latitude", len(model.lat))
        nc.createDimension("longitude", len(model.lon))
        frt = nc.createVariable("forecast_reference_time", "f8")
        frt.units, frt.standard_name = "hours since 1970-01-01 00:00:00", "forecast_reference_time"
        frt.assignValue((analyses.init - epoch).astype(np.int64) / 3600.0)
        lt = nc.createVariable("lead_time", "f8", ("lead_time",))
        lt.units, lt.standard_name = "hours", "forecast_period"
        lt[:] = leads
        vt = nc.createVariable("valid_time", "f8", ("lead_time",))
        vt.units, vt.standard_name = "hours since 1970-01-01 00:00:00", "time"
        vt[:] = (valid - epoch).astype(np.int64) / 3600.0
        for name, vals, units in (
            ("latitude", model.lat, "degrees_north"),
            ("longitude", model.lon, "degrees_east"),
        ):
            c = nc.createVariable(name, "f8", (name,))
            c.units, c.standard_name = units, name
            c[:] = vals
        for i, v in enumerate(model.variables):
            var = get_variable(v)
            x = nc.createVariable(v, "f4", ("lead_time", "latitude", "longitude"), zlib=True)
            x.units, x.long_name = var.units, var.long_name
            if var.standard_name:
                x.standard_name = var.standard_name
            x[:] = data[:, i]
