"""onnxruntime sessions and the one-step forecaster on numpy arrays: what running a model
needs, and nothing more (no torch, no xarray), so that a deployer's process stays small."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from wxmodels.export.io import ModelIO, onnx_io

if TYPE_CHECKING:
    from wxmodels.data.stats import Climatology

__all__ = ["OUTPUT", "OrtForecaster", "ort_session", "rollout", "save_ort"]

OUTPUT = "next"


def ort_session(
    path: str | Path, *, threads: int = 1, spinning: bool = True
) -> ort.InferenceSession:
    """A CPU session with a fixed number of intra-op threads (so that timings compare);
    ``path`` is an ``.onnx`` or ``.ort`` file or a ``.wxpack`` (unpacked and checked in
    memory). ``spinning=False`` stops idle intra-op threads from spinning between calls: what
    a device that forecasts now and then wants (and what makes one-thread timings steady)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if Path(path).suffix == ".wxpack":
        from wxmodels.export.packing import unpack_onnx

        return ort.InferenceSession(unpack_onnx(path), so, providers=["CPUExecutionProvider"])
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OrtForecaster:
    """A one-step forecaster backed by onnxruntime: ``(state, time) -> next`` on numpy arrays.

    The channel order of ``state`` and ``next`` is :attr:`variables`, read from the model's
    own I/O description (its ONNX metadata; ``model.json`` beside it for older files).
    Models that take the climatology as input get it from ``climatology`` (the
    ``climatology.nc`` shipped beside ``model.onnx``, found automatically when not given),
    taken in the model's channel order.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int = 1,
        climatology: Climatology | None = None,
        step_hours: float | None = None,
        spinning: bool = True,
    ):
        self.path = Path(path)
        self.session = ort_session(path, threads=threads, spinning=spinning)
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.history = int(inputs["state"].shape[1])
        self.needs_clim = "clim" in inputs
        self.io = onnx_io(self.session.get_modelmeta().custom_metadata_map) or self._spec_io()
        self.variables = list(self.io.variables) if self.io else None
        if self.needs_clim and climatology is None:
            climatology = _beside(self.path)
        if climatology is not None and self.variables and climatology.variables != self.variables:
            climatology = climatology.select(self.variables)
        self.climatology = climatology
        if step_hours is None and self.io is not None:
            step_hours = self.io.step_hours
        if self.needs_clim and step_hours is None:
            raise ValueError(f"{self.path}: the model's time step is unknown (no model.json)")
        self.step_hours = step_hours

    def _spec_io(self) -> ModelIO | None:
        """For ONNX files written before they carried their I/O description."""
        import json

        for spec in (self.path.with_name("model.json"), self.path.parent / "torch" / "model.json"):
            if spec.exists():
                return ModelIO.from_spec(json.loads(spec.read_text()))
        return None

    def feeds(self, state: np.ndarray, time_h: np.ndarray) -> dict[str, np.ndarray]:
        f = {
            "state": np.ascontiguousarray(state, np.float32),
            "time": np.ascontiguousarray(time_h, np.float32),
        }
        if self.needs_clim:
            if self.climatology is None or self.step_hours is None:
                raise ValueError(f"{self.path}: the model takes a climatology it was not given")
            f["clim"] = self.climatology.window(time_h, self.history, self.step_hours)
        return f

    @property
    def batch1(self) -> bool:
        """Whether the graph is fixed at batch 1 (the lean edge form, :func:`save_ort`)."""
        return any(i.name == "state" and i.shape[0] == 1 for i in self.session.get_inputs())

    def __call__(self, state: np.ndarray, time_h: np.ndarray) -> np.ndarray:
        if self.batch1 and len(state) > 1:  # one initialisation per call
            return np.concatenate(
                [self(state[i : i + 1], time_h[i : i + 1]) for i in range(len(state))]
            )
        return self.session.run([OUTPUT], self.feeds(state, time_h))[0]


def _beside(path: Path) -> Climatology:
    """The climatology shipped beside a model: ``climatology.npz`` (NumPy only), else
    ``climatology.nc`` (needs xarray)."""
    from wxmodels.data.stats import Climatology

    npz, nc = path.with_name("climatology.npz"), path.with_name("climatology.nc")
    if npz.exists():
        return Climatology.from_npz(npz)
    if nc.exists():
        return Climatology.from_netcdf(nc)
    raise FileNotFoundError(
        f"{path} takes a climatology input but there is no climatology.npz or .nc beside it"
    )


def rollout(
    step_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    state: np.ndarray,
    time_h: np.ndarray,
    steps: list[int],
    step_hours: float,
) -> np.ndarray:
    """Run a one-step forecaster from ``state`` ``(B, history, V, H, W)`` at initialisation
    times ``time_h`` ``(B,)`` (hours since 1970) and keep the states after each of ``steps``
    (sorted step counts): ``(B, len(steps), V, H, W)`` float32."""
    state = np.ascontiguousarray(state, np.float32)
    tm = np.asarray(time_h, np.float32)
    out = np.empty((state.shape[0], len(steps), *state.shape[2:]), np.float32)
    for s in range(1, max(steps) + 1):
        nxt = step_fn(state, tm)
        if s in steps:
            out[:, steps.index(s)] = nxt
        state = np.concatenate([state[:, 1:], nxt[:, None]], axis=1)
        tm = tm + np.float32(step_hours)
    return out


def save_ort(onnx_path: str | Path, ort_path: str | Path, *, tol: float = 1e-5) -> float:
    """Save ``onnx_path`` as the lean batch-1 form a device runs, in onnxruntime's own format
    (``.ort``: what ORT's minimal and mobile builds load, the graph optimised beforehand so a
    device skips that at load).

    The batch dimension is fixed at 1, so the shape arithmetic every dynamic-batch graph
    carries (``Shape``, ``Gather``, ``Concat``, ``ConstantOfShape``, ``Expand`` around masks and
    paddings) folds into constants; then the graph is optimised to the extended level (fusions
    valid on any CPU; not the layout changes of the full level, which depend on the machine
    that saves them). Both files are run on the same random states, one initialisation at a
    time: returns the largest difference relative to the output's spread, and raises
    :class:`ValueError` (removing the file) above ``tol``."""
    import tempfile

    import onnx

    ort_path = Path(ort_path)
    model = onnx.load(str(onnx_path))
    for v in (*model.graph.input, *model.graph.output):
        dim = v.type.tensor_type.shape.dim[0]
        if dim.dim_param or dim.dim_value != 1:
            dim.ClearField("dim_param")
            dim.dim_value = 1
    del model.graph.value_info[:]  # inferred again with the fixed batch
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(ort_path)
    so.add_session_config_entry("session.save_model_format", "ORT")
    so.log_severity_level = 3
    with tempfile.TemporaryDirectory() as d:
        b1 = Path(d) / "batch1.onnx"
        onnx.save(model, str(b1))
        ort.InferenceSession(str(b1), so, providers=["CPUExecutionProvider"])
    a = OrtForecaster(onnx_path, spinning=False)
    b = OrtForecaster(ort_path, climatology=a.climatology, step_hours=a.step_hours, spinning=False)
    h, w = a.io.shape if a.io else (1, 1)
    rng = np.random.default_rng(0)
    state = rng.normal(size=(2, a.history, len(a.variables or [0]), h, w)).astype(np.float32)
    tm = np.array([480_000.0, 480_007.0], np.float32)
    ya = np.concatenate([a(state[i : i + 1], tm[i : i + 1]) for i in range(2)])
    yb = b(state, tm)
    diff = float(np.nanmax(np.abs(ya - yb)) / max(float(np.nanstd(ya)), 1e-12))
    if not diff <= tol:
        ort_path.unlink(missing_ok=True)
        raise ValueError(f"{ort_path.name} differs from {Path(onnx_path).name} by {diff:.2g}")
    return diff
