"""A foreign ONNX forecaster as the teacher (``teacher.onnx``): registered, not trained.

:func:`register_foreign_teacher` fetches the file (any fsspec URL), checks its digest against
``teacher.sha256`` when given, renames its declared input and output to the project's signature
(``state``, ``time``, ``next``; the computation is untouched), stamps the I/O description, and
runs it on samples from the store: a file that breaks its declared contract (shapes, non-finite
output) is refused in one line before anything is built on it. The teacher directory then holds

* ``model.onnx``: the adapted graph, what evaluation, ONNX-side methods and the registry use;
* ``model.json``: its spec (``net.arch = "onnx"``: no torch weights exist);
* ``student.json``, ``grid.safetensors`` (validity mask, static fields) and, for climatology
  students, ``climatology.nc``: what distillation builds torch students from, normalised by
  the store's statistics.

:class:`ForeignTeacher` is the teacher torch methods see: an ``nn.Module`` whose forward runs
the file in onnxruntime (no gradient flows into it), so that the shared training loop distills
students against its forecasts over the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import onnx
import torch
from safetensors.numpy import load_file, save_file
from torch import nn

from wxmodels.config.cycle import CycleConfig
from wxmodels.config.teacher import ForeignTeacherConfig
from wxmodels.errors import ConfigError, DataError
from wxmodels.export.io import ModelIO, stamp_io
from wxmodels.export.onnx import OrtForecaster
from wxmodels.nets.forecaster import ForecasterSpec, spec_from_json
from wxmodels.pipeline.context import RunData, load_run_data
from wxmodels.pipeline.records import TeacherRecord
from wxmodels.schema import get_variable
from wxmodels.utils import code_version, stable_hash

__all__ = ["ForeignTeacher", "adapt_signature", "fetch", "register_foreign_teacher"]

log = logging.getLogger(__name__)


def fetch(uri: str, dest: Path, storage_options: dict[str, Any] | None = None) -> str:
    """Copy ``uri`` to ``dest``; return its sha256."""
    h = hashlib.sha256()
    try:
        with fsspec.open(uri, "rb", **(storage_options or {})) as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
    except (OSError, ValueError) as e:
        raise DataError(f"teacher.onnx {uri}: cannot be read: {e}") from e
    return h.hexdigest()


def adapt_signature(src: Path, dst: Path, fc: ForeignTeacherConfig) -> None:
    """Rename the declared input/output tensors to ``state``/``time``/``next`` (any other
    tensor of those names moves aside) and add an unused ``time`` input when the model has
    none, so that the file is fed like every model of the project."""
    try:
        m = onnx.load(str(src))
    except Exception as e:  # a truncated or non-ONNX file
        raise DataError(f"teacher.onnx is not a readable ONNX model: {e}") from e
    g = m.graph
    inits = {i.name for i in g.initializer}
    inputs = [i.name for i in g.input if i.name not in inits]
    outputs = [o.name for o in g.output]
    if fc.state_input not in inputs:
        raise DataError(
            f"teacher.onnx has no input {fc.state_input!r} (teacher.state_input); it has {inputs}"
        )
    if fc.time_input is not None and fc.time_input not in inputs:
        raise DataError(f"teacher.onnx has no input {fc.time_input!r}; it has {inputs}")
    out = fc.output or (outputs[0] if len(outputs) == 1 else None)
    if out is None or out not in outputs:
        raise DataError(
            f"teacher.onnx: name the forecast among its outputs {outputs} (teacher.output)"
        )
    extra = [n for n in inputs if n not in (fc.state_input, fc.time_input)]
    if extra:
        raise DataError(f"teacher.onnx takes inputs the contract does not declare: {extra}")
    wanted = {fc.state_input: "state", out: "next"}
    if fc.time_input:
        wanted[fc.time_input] = "time"
    names = (
        {t for n in g.node for t in (*n.input, *n.output)}
        | set(inputs)
        | set(outputs)
        | inits
        | {v.name for v in g.value_info}
    )
    rename = dict(wanted)
    for target in ("state", "time", "next"):
        if target in names and target not in wanted:
            rename[target] = f"foreign/{target}"

    def r(name: str) -> str:
        return rename.get(name, name)

    for n in g.node:
        n.input[:] = [r(x) for x in n.input]
        n.output[:] = [r(x) for x in n.output]
    for coll in (g.input, g.output, g.value_info):
        for v in coll:
            v.name = r(v.name)
    for i in g.initializer:
        i.name = r(i.name)
    # only the forecast is an output of the adapted graph
    keep = [o for o in g.output if o.name == "next"]
    del g.output[:]
    g.output.extend(keep)
    if not fc.time_input:
        g.input.append(
            onnx.helper.make_tensor_value_info("time", onnx.TensorProto.FLOAT, ["batch"])
        )
    onnx.save(m, str(dst))


def _check(path: Path, run: RunData, fc: ForeignTeacherConfig, spec: ForecasterSpec) -> None:
    """Run the file on a few samples from the store against its declared contract."""
    fields, split = run.fields, run.split
    probe = split.inits(fields, "val", history=fc.history, lead_steps=1)[:4]
    if not len(probe):
        raise DataError("the store has no validation sample to check teacher.onnx on")
    state = np.stack([fields.data[i - fc.history + 1 : i + 1] for i in probe]).astype(np.float32)
    try:
        runner = OrtForecaster(path)
        got = runner(state, fields.hours[probe].astype(np.float32))
    except Exception as e:
        raise DataError(
            f"teacher.onnx does not run on the declared input (batch, {fc.history}, "
            f"{len(fc.variables)}, {len(spec.lat)}, {len(spec.lon)}): {str(e).splitlines()[0]}"
        ) from e
    want = (len(probe), len(fc.variables), len(spec.lat), len(spec.lon))
    if got.shape != want:
        raise DataError(f"teacher.onnx returns shape {got.shape}; the contract says {want}")
    valid = fields.valid
    if not np.isfinite(got[:, :, valid]).all():
        raise DataError("teacher.onnx returns non-finite values inside the domain")
    truth = fields.data[probe + 1]
    std = np.asarray(spec.std, np.float32).reshape(1, -1, 1, 1)
    err = float(np.sqrt(np.nanmean(((got - truth) / std)[:, :, valid] ** 2)))
    if not err < 3.0:  # not even the size of the field's variability: units or order are wrong
        raise DataError(
            f"teacher.onnx's one-step forecasts are {err:.1f} standard deviations off the store "
            "on validation samples: check teacher.variables (order), units and step_hours"
        )


def teacher_id(cfg: CycleConfig, sha256: str, store_version: str) -> str:
    fc = cfg.teacher
    assert fc is not None
    return "t-" + stable_hash(
        {
            "onnx": sha256,
            "contract": fc.contract(),
            "store": store_version,
            "split": cfg.data.split.model_dump(),
            "students": cfg.net.model_dump(),
            "code": code_version(),
        },
        12,
    )


def register_foreign_teacher(cfg: CycleConfig) -> TeacherRecord:
    """Fetch, verify, adapt and check ``cfg.teacher.onnx`` (see the module docstring)."""
    from wxmodels.pipeline.teacher import build_spec

    fc = cfg.teacher
    if fc is None:
        raise ConfigError("no teacher.onnx in this config")
    t0 = time.perf_counter()
    run = load_run_data(cfg)
    fields = run.fields
    if list(fields.variables) != list(fc.variables):
        raise ConfigError(
            f"teacher.variables {fc.variables} must be data.variables {list(fields.variables)}, "
            "in the same order (the teacher's channel order)"
        )
    if abs(fields.step_hours - fc.step_hours) > 1e-6:
        raise ConfigError(
            f"teacher.step_hours {fc.step_hours:g} is not the store's step "
            f"({fields.step_hours:g} h)"
        )
    root = Path(cfg.workdir) / "teachers"
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".fetch-{stable_hash(fc.onnx, 12)}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        sha = fetch(fc.onnx, staging / "source.onnx", cfg.data.storage_options)
        if fc.sha256 is not None and sha != fc.sha256:
            raise DataError(
                f"teacher.onnx {fc.onnx} has sha256 {sha}, not the declared {fc.sha256}: refused"
            )
        tid = teacher_id(cfg, sha, fields.store_version)
        out = root / tid
        if (out / "teacher.json").exists():
            log.info(
                "foreign teacher %s exists for store %s: reusing it", tid, fields.store_version
            )
            return TeacherRecord.load(out / "teacher.json")
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        student, statics, clim, _ = build_spec(cfg, run)
        h, w = fields.valid.shape
        save_file(
            {
                "valid": fields.valid.astype(np.uint8),
                "statics": np.zeros((0, h, w), np.float32)
                if statics is None
                else np.asarray(statics, np.float32),
            },
            str(tmp / "grid.safetensors"),
        )
        spec = ForecasterSpec(
            **{
                **student.__dict__,
                "net": {"arch": "onnx", "history": fc.history},
                "overrides": {},
                "climatology": False,
                "anomaly_std": None,
                "damping": None,
            }
        )
        (tmp / "model.json").write_text(json.dumps(spec.to_json(), indent=1))
        (tmp / "student.json").write_text(json.dumps(student.to_json(), indent=1))
        if clim is not None:
            clim.to_netcdf(tmp / "climatology.nc")
        adapt_signature(staging / "source.onnx", tmp / "model.onnx", fc)
        stamp_io(tmp / "model.onnx", ModelIO.from_spec(spec))
        _check(tmp / "model.onnx", run, fc, spec)
        graph = onnx.load(str(tmp / "model.onnx")).graph
        params = int(sum(np.prod(i.dims) for i in graph.initializer))
        record = TeacherRecord(
            id=tid,
            dir=str(out),
            init=f"foreign ONNX teacher {fc.onnx} (sha256 {sha[:12]}): registered, not trained",
            store_url=fields.store_url,
            store_version=fields.store_version,
            store_range=(str(fields.times[0]), str(fields.times[-1])),
            split=run.split.describe(fields),
            split_index={"train": run.split.train, "val": run.split.val, "test": run.split.test},
            variables=list(fields.variables),
            step_hours=fields.step_hours,
            params=params,
            net=spec.net,
            seed=0,
            fit={},
            onnx_parity=0.0,
            onnx_bytes=(tmp / "model.onnx").stat().st_size,
            climatology_bytes=(tmp / "climatology.nc").stat().st_size if clim else 0,
            code_version=code_version(),
            wall_s=time.perf_counter() - t0,
            foreign={
                "source": fc.onnx,
                "sha256": sha,
                "bytes": (staging / "source.onnx").stat().st_size,
                "contract": fc.contract(),
                "units": [get_variable(v).units for v in fc.variables],
            },
        )
        record.write(tmp / "teacher.json")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        log.info("foreign teacher %s registered from %s (%d parameters)", tid, fc.onnx, params)
        return record
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class ForeignTeacher(nn.Module):
    """A foreign ONNX teacher as the torch methods see one: ``forward(state, time, clim)`` runs
    the file in onnxruntime (``clim`` is ignored: the file takes none). It has no parameters,
    and copying it shares the session (it is never changed)."""

    def __init__(self, teacher_dir: str | Path, threads: int = 1):
        super().__init__()
        d = Path(teacher_dir)
        self.runner = OrtForecaster(d / "model.onnx", threads=threads)
        self.spec = spec_from_json(json.loads((d / "student.json").read_text()))
        self.history = self.runner.history
        self.members = 1
        self.climatology = False
        self.skip = None
        self.spatial = None
        grid = load_file(str(d / "grid.safetensors"))
        self.register_buffer("statics", torch.from_numpy(grid["statics"])[None])
        self.register_buffer("valid", torch.from_numpy(grid["valid"].astype(bool))[None, None])

    def __deepcopy__(self, memo: dict) -> ForeignTeacher:
        return self

    def forward(
        self, state: torch.Tensor, time: torch.Tensor, clim: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = self.runner(state.detach().cpu().numpy(), time.detach().cpu().numpy())
        return torch.from_numpy(out).to(state.device)
