"""Run a pulled model on analysis data and write a CF-style forecast (NetCDF or Zarr)."""

from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from wxmodels.errors import DataError, PathError
from wxmodels.export.io import read_io
from wxmodels.export.runtime import OrtForecaster, rollout
from wxmodels.paths import swap_in
from wxmodels.schema import LAT, LON, TIME, get_variable

__all__ = [
    "check_output",
    "forecast",
    "load_inputs",
    "parse_starts",
    "scored_runtimes",
    "write_forecast",
]

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
    return _select(_open(source, storage_options), source, variables, start, history, step_hours)


def _open(source: str, storage_options: dict | None) -> xr.Dataset:
    local = "://" not in source
    if local and not Path(source).exists():
        raise DataError(f"input {source} does not exist")
    try:
        if source.endswith((".nc", ".nc4", ".cdf")):
            return xr.open_dataset(source)
        from wxmodels.data.store import Store

        try:
            return Store(source, storage_options).open()
        except DataError:
            return xr.open_zarr(source, storage_options=storage_options, consolidated=False)
    except (OSError, ValueError, KeyError) as e:
        raise DataError(
            f"input {source} is neither a store, a Zarr dataset nor a NetCDF file that can be "
            f"read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None


def _check_variables(ds: xr.Dataset, source: str, variables: list[str]) -> None:
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise DataError(f"{source} lacks the model's variables {missing}")


def _select(
    ds: xr.Dataset,
    source: str,
    variables: list[str],
    start: pd.Timestamp,
    history: int,
    step_hours: float,
) -> xr.Dataset:
    _check_variables(ds, source, variables)
    times = [start - pd.Timedelta(hours=step_hours * k) for k in range(history - 1, -1, -1)]
    try:
        return ds[variables].sel({TIME: times}).transpose(TIME, LAT, LON).load()
    except KeyError:
        raise DataError(
            f"{source} does not hold the {history} analyses ending at {start} "
            f"(needs {', '.join(str(t) for t in times)})"
        ) from None


def _states(
    ds: xr.Dataset,
    source: str,
    variables: list[str],
    starts: list[pd.Timestamp],
    history: int,
    step_hours: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's input for every start, ``(B, history, V, H, W)`` float32, read in one
    selection of the times they need (a hindcast block shares most of them)."""
    offsets = [pd.Timedelta(hours=step_hours * k) for k in range(history - 1, -1, -1)]
    need = sorted({t0 - o for t0 in starts for o in offsets})
    _check_variables(ds, source, variables)
    try:
        sub = ds[variables].sel({TIME: need}).transpose(TIME, LAT, LON).load()
    except KeyError:
        for t0 in starts:  # name the first start whose analyses are missing
            _select(ds, source, variables, t0, history, step_hours)
        raise
    arr = np.stack([sub[v].values for v in variables], axis=1).astype(np.float32)
    row = {t: i for i, t in enumerate(need)}
    idx = np.array([[row[t0 - o] for o in offsets] for t0 in starts])
    return arr[idx], sub[LAT].values, sub[LON].values


class _TorchRunner:
    """The HPC path: the model rebuilt in torch from ``model.json`` + ``model.safetensors``
    (no pickle), with the same feeds as the ONNX model."""

    def __init__(self, model_dir: Path, threads: int):
        import torch

        from wxmodels.data.stats import Climatology
        from wxmodels.nets import load_forecaster

        torch.set_num_threads(threads)
        self.model = load_forecaster(model_dir)
        side = model_dir / "climatology.nc"
        self.clim = None
        if side.exists():  # in the model's channel order
            self.clim = Climatology.from_netcdf(side).select(self.model.spec.variables)

    def __call__(self, state: np.ndarray, time_h: np.ndarray) -> np.ndarray:
        import torch

        args = [torch.from_numpy(state), torch.from_numpy(time_h)]
        if self.model.climatology:
            m = self.model
            if self.clim is None:
                raise DataError("the model takes a climatology, and climatology.nc is missing")
            args.append(torch.from_numpy(self.clim.window(time_h, m.history, m.spec.step_hours)))
        with torch.no_grad():
            return self.model(*args).numpy()


_LEGACY_ONNX_STEPS = frozenset({"int8", "dynamic"})


def scored_runtimes(manifest: dict) -> list[str]:
    """The runtimes that reproduce the forecasts a version was scored with: ``onnx`` always;
    ``torch`` too unless an ONNX-side step (int8 quantization) made the scored model."""
    if "runtimes" in manifest:
        return list(manifest["runtimes"])
    # manifests written before they listed their runtimes
    steps = manifest.get("recipe") or []
    onnx_side = any(isinstance(s, dict) and s.get("method") in _LEGACY_ONNX_STEPS for s in steps)
    return ["onnx"] if onnx_side else ["onnx", "torch"]


def _timestamp(text: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise DataError(f"initialisation time {text!r} is not an ISO 8601 time") from None
    if t is pd.NaT:
        raise DataError(f"initialisation time {text!r} is not a time")
    return t.tz_convert(None) if t.tzinfo is not None else t


def parse_starts(text: str) -> list[str]:
    """``--start T1,T2,...`` checked: each an ISO 8601 time (:class:`DataError` otherwise)."""
    starts = [t.strip() for t in text.split(",") if t.strip()]
    if not starts:
        raise DataError("no initialisation time given")
    for t in starts:
        _timestamp(t)
    return starts


@functools.lru_cache(maxsize=2)
def _runner(
    model_dir: str, runtime: str, threads: int, sha256: str
) -> _TorchRunner | OrtForecaster:
    """The model of a pulled directory, loaded once per process (``sha256`` of its ONNX file
    keys the cache: a directory holds one immutable version)."""
    if runtime == "torch":
        return _TorchRunner(Path(model_dir), threads)
    return OrtForecaster(Path(model_dir) / "model.onnx", threads=threads)


def forecast(
    model_dir: str | Path,
    source: str,
    start: str | list[str],
    leads_h: list[int],
    *,
    storage_options: dict | None = None,
    threads: int = 1,
    runtime: Literal["onnx", "torch"] = "onnx",
    batch_size: int = 16,
) -> xr.Dataset:
    """Forecast from each initialisation time in ``start`` at ``leads_h`` with the pulled model
    in ``model_dir``, ``batch_size`` initialisations per call: in onnxruntime (``onnx``, edge)
    or in torch from the safetensors weights (``torch``, HPC)."""
    model_dir = Path(model_dir)
    man = json.loads((model_dir / "manifest.json").read_text())
    ref = f"{man.get('name')}@{man.get('version')}"
    if runtime not in ("onnx", "torch"):
        raise DataError(f"runtime {runtime!r}: onnx or torch")
    if runtime not in scored_runtimes(man):
        raise DataError(
            f"{ref} was scored as an ONNX model with an ONNX-side step "
            f"({man.get('recipe_label')}); its torch weights are the model before that step, "
            "not what was scored: use --runtime onnx"
        )
    # the channel order comes from the model itself (never from a sorted manifest)
    io = read_io(model_dir, runtime=runtime)
    io.check_manifest(man, ref)
    sig = man["signature"]
    variables = list(io.variables)
    step = io.step_hours
    hist = io.history
    starts = [_timestamp(t) for t in ([start] if isinstance(start, str) else start)]
    if not starts:
        raise DataError("no initialisation time given")
    bad = [lead for lead in leads_h if lead <= 0 or (lead / step) != int(lead / step)]
    if bad or not leads_h:
        raise DataError(f"leads {bad} h are not positive multiples of the model's {step} h step")
    ds_in = _open(source, storage_options)
    states, lat, lon = _states(ds_in, source, variables, starts, hist, step)
    if [len(lat), len(lon)] != sig["grid"]["shape"] or not np.allclose(lat, sig["grid"]["lat"]):
        raise DataError(
            f"the input grid {len(lat)}x{len(lon)} is not the model's {sig['grid']['shape']}"
        )
    if runtime == "torch" and not (model_dir / "model.safetensors").exists():
        raise DataError(f"{model_dir} has no model.safetensors (pulled --packed?)")
    # one session per process and model: a hindcast's blocks reuse it
    sha = man["files"]["model.onnx"]["sha256"]
    runner = _runner(str(model_dir.resolve()), runtime, threads, sha)
    if (
        isinstance(runner, OrtForecaster)
        and runner.variables is not None
        and runner.variables != variables
    ):
        raise DataError(f"{ref}: model.onnx and its description disagree on the variables")
    steps = sorted({int(lead / step) for lead in leads_h})
    data = np.empty((len(starts), len(steps), len(variables), len(lat), len(lon)), np.float32)
    for b0 in range(0, len(starts), batch_size):
        batch = range(b0, min(b0 + batch_size, len(starts)))
        state = states[b0 : b0 + len(batch)]
        tm = np.array([starts[i].value / 3.6e12 for i in batch], np.float32)
        data[b0 : b0 + len(batch)] = rollout(runner, state, tm, steps, step)
    leads = np.array([s * step for s in steps], np.float64)
    frt = np.array([t.to_datetime64() for t in starts], "datetime64[ns]")
    ds = xr.Dataset(
        {
            v: (("forecast_reference_time", "lead_time", LAT, LON), data[:, :, i])
            for i, v in enumerate(variables)
        },
        coords={
            "forecast_reference_time": ("forecast_reference_time", frt),
            "lead_time": ("lead_time", leads),
            "valid_time": (
                ("forecast_reference_time", "lead_time"),
                frt[:, None] + (leads * 3600).astype("timedelta64[s]")[None],
            ),
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
        "institution": "wxcompress",
        "model_sha256": man["files"]["model.onnx"]["sha256"],
        "model_runtime": runtime,
        "input": source,
        "history": f"{datetime.now(UTC).isoformat(timespec='seconds')} wxc predict",
        "references": "lineage in the registry manifest: "
        + json.dumps(man.get("lineage", {}).get("store_version")),
    }
    if man.get("synthetic"):
        ds.attrs["comment"] = "model trained on SYNTHETIC data (not real weather)"
    return ds


FORECAST_ATTR = "wxcompress_product"


def _is_our_forecast(path: Path) -> bool:
    """Whether ``path`` is a forecast this project wrote (NetCDF or Zarr)."""
    try:
        if path.is_dir():
            meta = json.loads((path / "zarr.json").read_text())
            return meta.get("attributes", {}).get(FORECAST_ATTR) == "forecast"
        with xr.open_dataset(path) as ds:
            return ds.attrs.get(FORECAST_ATTR) == "forecast"
    except (OSError, ValueError):
        return False


def _probe_writable(parent: Path) -> None:
    """Fail now, in one line, where the output could not be written later."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".wxc-probe-"):
            pass
    except OSError as e:
        raise PathError(f"cannot write into {parent}: {e.strerror or e}") from None


def check_output(out: str | Path, *, overwrite: bool = False) -> None:
    """Refuse (:class:`PathError`) an output path that must not be written: a link or device,
    or an existing path unless ``overwrite`` and it is a forecast wxcompress wrote."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not (out.is_file() or out.is_dir())):
        raise PathError(f"--out {out} is a link or a device: refusing to write there")
    if not out.exists():
        _probe_writable(out.parent)
    else:
        if not overwrite:
            raise PathError(f"--out {out} exists: pass --overwrite to replace a forecast")
        if not _is_our_forecast(out):
            raise PathError(
                f"--out {out} exists and is not a forecast written by wxcompress: refusing to "
                "replace it"
            )


def write_forecast(ds: xr.Dataset, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write NetCDF (``.nc``) or Zarr (anything else), built beside ``out`` and renamed into
    place. An existing ``out`` is replaced only with ``overwrite`` and only when it is a
    forecast written by wxcompress; anything else there is left alone (:class:`PathError`)."""
    out = Path(out)
    check_output(out, overwrite=overwrite)
    ds = ds.assign_attrs({FORECAST_ATTR: "forecast"})
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix in (".nc", ".nc4"):
            ds.to_netcdf(tmp)
            tmp.replace(out)
        else:
            ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False)
            swap_in(str(tmp), str(out))
    except OSError as e:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise PathError(f"cannot write --out {out}: {e.strerror or e}") from None
    return out
