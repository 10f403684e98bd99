"""The whole cycle's configuration, and loading it from YAML with CLI overrides."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import Field, ValidationError, field_validator

from wxmodels.config.base import Strict
from wxmodels.config.compress import CompressConfig
from wxmodels.config.data import DataConfig, expand
from wxmodels.config.evaluate import EvaluateConfig, GateConfig
from wxmodels.config.model import NetConfig, TrainConfig
from wxmodels.config.runtime import PromoteConfig, RuntimeConfig
from wxmodels.config.stream import StreamConfig
from wxmodels.config.teacher import ForeignTeacherConfig
from wxmodels.errors import ConfigError

M = TypeVar("M", bound=Strict)

__all__ = ["CycleConfig", "apply_overrides", "load_config"]

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class CycleConfig(Strict):
    """One operational cycle: ingest -> teacher -> compression matrix -> validate -> promote."""

    name: str
    """Model name in the registry (``name@edge``): lowercase letters, digits, ``-``, ``_``."""
    description: str = ""
    workdir: str = Field(".wxc/run")
    """Where the run's artifacts go (teacher, candidates, scorecards, reports)."""
    data: DataConfig
    stream: StreamConfig = StreamConfig()
    """Reading the store: in memory, or streamed in bounded memory (global grids, long
    records)."""
    net: NetConfig = NetConfig()
    """The teacher's architecture."""
    train: TrainConfig = TrainConfig()
    teacher: ForeignTeacherConfig | None = None
    """A foreign ONNX forecaster as the teacher (instead of training ``net``): see
    :class:`~wxmodels.config.teacher.ForeignTeacherConfig`. ``net`` then describes the
    students' defaults."""
    compress: CompressConfig
    evaluate: EvaluateConfig = EvaluateConfig()
    gates: GateConfig = GateConfig()
    promote: PromoteConfig = PromoteConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("use lowercase letters, digits, '-' and '_' (at most 63)")
        return v

    @field_validator("workdir")
    @classmethod
    def _expand(cls, v: str) -> str:
        return expand(v)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a raw config dict.

    List items are addressed by a non-negative index (``compress.cells.0.steps.0.amount=0.7``).
    Anything else raises :class:`ConfigError` naming the override.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty field name in {key!r}")
        node: Any = raw
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[:i]) or "the config"
            if isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    raise ConfigError(
                        f"override {key}: {p!r} is not an index of {where} (0..{len(node) - 1})"
                    )
                idx = int(p)
                if last:
                    node[idx] = _parse_value(value)
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[p] = _parse_value(value)
                else:
                    node = node.setdefault(p, {})
            else:
                raise ConfigError(
                    f"override {key}: {where} is a value ({node!r}), not a section with fields"
                )
    return raw


def _explain(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors()[:3]:
        loc = ".".join(str(x) for x in e["loc"] if not str(x).startswith(("function-", "tagged-")))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            parent = e["loc"][:-1]
            fields = _fields_at(CycleConfig, list(parent))
            close = difflib.get_close_matches(str(e["loc"][-1]), fields, n=1)
            msg = "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
        lines.append(f"{loc}: {msg}")
    more = len(err.errors()) - 3
    tail = f" (+{more} more)" if more > 0 else ""
    return f"{source}: " + "; ".join(lines) + tail


def _fields_at(model: type, path: list) -> list[str]:
    node: Any = model
    for p in path:
        fields = getattr(node, "model_fields", None)
        if fields is None or str(p) not in fields:
            return []
        ann = fields[str(p)].annotation
        node = ann if hasattr(ann, "model_fields") else None
        if node is None:
            return []
    return list(getattr(node, "model_fields", {}))


def load_config(path: str | Path, overrides: list[str] | None = None) -> CycleConfig:
    """Load and validate a cycle config; problems raise :class:`ConfigError` (one line)."""
    return load_model(CycleConfig, path, overrides, "config file")


def load_model(
    model: type[M], path: str | Path, overrides: list[str] | None = None, what: str = "file"
) -> M:
    """Read the YAML file ``path``, apply ``--set`` style ``overrides`` and validate it as
    ``model``; problems raise :class:`ConfigError` (one line naming the file and field)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not a text (YAML) file") from None
    except OSError as e:
        raise ConfigError(f"{what} {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    raw = apply_overrides(raw, list(overrides or []))
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(e, str(path))) from None
