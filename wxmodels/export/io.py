"""What a model's tensors mean: the one place a model's channel order lives.

A forecaster's ``state``, ``clim`` and ``next`` tensors carry the variables in the order of
its spec (``model.json``), which is the order of the config it was trained from, not any
sorted order. :class:`ModelIO` is read from that spec and written into the ONNX file's
metadata (``metadata_props["wxcompress.io"]``) when it is exported, so that every consumer
(evaluation, ``wxc predict`` in onnxruntime or torch, a deployer's own code) takes the order
from the model itself. The registry manifest repeats it as an ordered list, and a consumer
refuses a version whose manifest and model disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wxmodels.errors import DataError
from wxmodels.schema import get_variable

__all__ = ["IO_KEY", "ModelIO", "read_io", "stamp_io"]

IO_KEY = "wxcompress.io"
_IO_VERSION = 1


@dataclass(frozen=True)
class ModelIO:
    """The meaning of a forecaster's inputs and outputs.

    Attributes:
        variables: canonical names in channel order (V) of ``state``, ``clim`` and ``next``.
        units: the units of each variable, same order.
        step_hours: hours advanced by one call.
        history: states in ``state`` (its second dimension).
        shape: the grid ``(H, W)``.
    """

    variables: tuple[str, ...]
    units: tuple[str, ...]
    step_hours: float
    history: int
    shape: tuple[int, int]

    @classmethod
    def from_spec(cls, spec: Any) -> ModelIO:
        """From a :class:`~wxmodels.nets.ForecasterSpec` or its JSON (``model.json``)."""
        data = spec.get("_data", spec) if isinstance(spec, dict) else spec.__dict__
        variables = tuple(data["variables"])
        return cls(
            variables=variables,
            units=tuple(get_variable(v).units for v in variables),
            step_hours=float(data["step_hours"]),
            history=int(data["net"].get("history", 1)),
            shape=(len(data["lat"]), len(data["lon"])),
        )

    @classmethod
    def from_json(cls, text: str) -> ModelIO:
        obj = json.loads(text)
        if obj.get("_version") != _IO_VERSION:
            raise DataError(f"model I/O description version {obj.get('_version')} is unknown")
        return cls(
            variables=tuple(obj["variables"]),
            units=tuple(obj["units"]),
            step_hours=float(obj["step_hours"]),
            history=int(obj["history"]),
            shape=(int(obj["shape"][0]), int(obj["shape"][1])),
        )

    def to_json(self) -> str:
        return json.dumps({"_version": _IO_VERSION, **asdict(self)}, separators=(",", ":"))

    def manifest_variables(self) -> list[dict[str, str]]:
        """The ordered list the registry manifest carries (a list keeps its order in JSON
        written with sorted keys; a mapping would not)."""
        return [{"name": v, "units": u} for v, u in zip(self.variables, self.units, strict=True)]

    def check_manifest(self, manifest: dict[str, Any], what: str) -> None:
        """Refuse a manifest whose variable order differs from the model's own."""
        listed = manifest.get("signature", {}).get("variables")
        if isinstance(listed, list):
            names = tuple(v["name"] if isinstance(v, dict) else v for v in listed)
            if names != self.variables:
                raise DataError(
                    f"{what}: the manifest lists the variables as {list(names)} but the model's "
                    f"channels are {list(self.variables)}; refusing to run it"
                )


def stamp_io(onnx_path: str | Path, io: ModelIO) -> Path:
    """Write ``io`` into the ONNX file's metadata (replacing an earlier description)."""
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path), load_external_data=False)
    keep = [p for p in model.metadata_props if p.key != IO_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    model.metadata_props.add(key=IO_KEY, value=io.to_json())
    onnx.save(model, str(path))
    return path


def onnx_io(metadata: dict[str, str]) -> ModelIO | None:
    """The description in an ONNX model's custom metadata map, if it has one."""
    text = metadata.get(IO_KEY)
    return ModelIO.from_json(text) if text else None


def read_io(model_dir: str | Path, *, runtime: str = "onnx") -> ModelIO:
    """The I/O description of a model directory (a pulled version, a teacher or a candidate):
    from the ONNX file's metadata for ``onnx``, from the torch spec (``model.json``) for
    ``torch`` and for ONNX files written before the metadata existed."""
    d = Path(model_dir)
    if runtime == "onnx" and (d / "model.onnx").exists():
        import onnx

        m = onnx.load(str(d / "model.onnx"), load_external_data=False)
        io = onnx_io({p.key: p.value for p in m.metadata_props})
        if io is not None:
            return io
    for spec in (d / "model.json", d / "torch" / "model.json"):
        if spec.exists():
            return ModelIO.from_spec(json.loads(spec.read_text()))
    raise DataError(f"{d} holds neither an ONNX model with its I/O description nor model.json")
