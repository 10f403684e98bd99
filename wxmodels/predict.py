"""Run a pulled model on analysis data and write a CF-style forecast (NetCDF or Zarr)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.data.store import Store
from wxmodels.errors import DataError
from wxmodels.export.onnx import OrtForecaster
from wxmodels.schema import LAT, LON, TIME, get_variable

__all__ = ["forecast", "load_inputs", "write_forecast"]

log = logging.getLogger(__name__)


def load_inputs(
    source: str,
    variables: list[str],
    start: pd.Timestamp,
    history: int,
    step_hours: float,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """The ``history`` analyses ending at ``start`` from a store, a Zarr URL or a NetCDF file."""
    if source.endswith((".nc", ".nc4", ".cdf")):
        ds = xr.open_dataset(source)
    else:
        try:
            ds = Store(source, storage_options).open()
        except DataError:
            ds = xr.open_zarr(source, storage_options=storage_options)
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise DataError(f"{source} lacks the model's variables {missing}")
    times = [start - pd.Timedelta(hours=step_hours * k) for k in range(history - 1, -1, -1)]
    try:
        return ds[variables].sel({TIME: times}).transpose(TIME, LAT, LON).load()
    except KeyError:
        raise DataError(
            f"{source} does not hold the {history} analyses ending at {start} "
            f"(needs {', '.join(str(t) for t in times)})"
        ) from None


def forecast(
    model_dir: str | Path,
    source: str,
    start: str,
    leads_h: list[int],
    *,
    storage_options: dict | None = None,
    threads: int = 1,
) -> xr.Dataset:
    """Forecast from ``start`` at ``leads_h`` with the pulled model in ``model_dir``."""
    model_dir = Path(model_dir)
    man = json.loads((model_dir / "manifest.json").read_text())
    sig = man["signature"]
    variables = list(sig["variables"])
    step = float(sig["step_hours"])
    hist = int(sig["history"])
    t0 = pd.Timestamp(start)
    bad = [lead for lead in leads_h if lead <= 0 or (lead / step) != int(lead / step)]
    if bad:
        raise DataError(f"leads {bad} h are not positive multiples of the model's {step} h step")
    inputs = load_inputs(source, variables, t0, hist, step, storage_options)
    lat, lon = inputs[LAT].values, inputs[LON].values
    if [len(lat), len(lon)] != sig["grid"]["shape"] or not np.allclose(lat, sig["grid"]["lat"]):
        raise DataError(
            f"the input grid {len(lat)}x{len(lon)} is not the model's {sig['grid']['shape']}"
        )
    state = np.stack([inputs[v].values for v in variables], axis=1)[None].astype(np.float32)
    runner = OrtForecaster(model_dir / "model.onnx", threads=threads)
    tm = np.array([t0.value / 3.6e12], np.float32)
    steps = sorted({int(lead / step) for lead in leads_h})
    out = {}
    for s in range(1, max(steps) + 1):
        nxt = runner(state, tm)
        if s in steps:
            out[s] = nxt[0]
        state = np.concatenate([state[:, 1:], nxt[:, None]], axis=1)
        tm = tm + np.float32(step)
    leads = np.array([s * step for s in steps])
    data = np.stack([out[s] for s in steps])  # (L, V, H, W)
    ds = xr.Dataset(
        {v: (("lead_time", LAT, LON), data[:, i]) for i, v in enumerate(variables)},
        coords={
            "lead_time": ("lead_time", leads.astype(np.float64)),
            "forecast_reference_time": ((), np.datetime64(t0.to_datetime64(), "ns")),
            "valid_time": ("lead_time", (t0 + pd.to_timedelta(leads, unit="h")).values),
            LAT: lat,
            LON: lon,
        },
    )
    ds["lead_time"].attrs = {
        "units": "hours",
        "standard_name": "forecast_period",
        "long_name": "lead time",
    }
    ds["forecast_reference_time"].attrs = {"standard_name": "forecast_reference_time"}
    ds["valid_time"].attrs = {"standard_name": "time", "long_name": "valid time"}
    ds[LAT].attrs = {"units": "degrees_north", "standard_name": "latitude"}
    ds[LON].attrs = {"units": "degrees_east", "standard_name": "longitude"}
    for v in variables:
        var = get_variable(v)
        ds[v].attrs = {
            "units": var.units,
            "long_name": var.long_name,
            **({"standard_name": var.standard_name} if var.standard_name else {}),
        }
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": f"wxcompress forecast from {man['name']}@{man['version']}",
        "source": f"{man['name']}@{man['version']} ({man.get('recipe_label', man.get('kind'))})",
        "model_sha256": man["files"]["model.onnx"]["sha256"],
        "input": source,
        "history": f"{datetime.now(UTC).isoformat(timespec='seconds')} wxc predict",
        "references": "lineage in the registry manifest: "
        + json.dumps(man.get("lineage", {}).get("store_version")),
    }
    if man.get("synthetic"):
        ds.attrs["comment"] = "model trained on SYNTHETIC data (not real weather)"
    return ds


def write_forecast(ds: xr.Dataset, out: str | Path) -> Path:
    """Write NetCDF (``.nc``) or Zarr (anything else), atomically for NetCDF."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix in (".nc", ".nc4"):
        tmp = out.with_name(f".{out.name}.partial")
        ds.to_netcdf(tmp)
        tmp.replace(out)
    else:
        ds.to_zarr(out, mode="w", zarr_format=3, consolidated=False)
    return out
