"""Validated configuration: one pydantic model per concern, loaded from YAML under ``configs/``.

The config package sits below everything it configures (it imports nothing but the schema and
the errors), so that a config is loaded and validated without torch. Names are imported lazily:
``import wxmodels.config`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Strict": "base",
    "CellConfig": "compress",
    "CompressConfig": "compress",
    "CycleConfig": "cycle",
    "load_config": "cycle",
    "DataConfig": "data",
    "FilesSourceConfig": "data",
    "SplitConfig": "data",
    "SyntheticSourceConfig": "data",
    "ZarrSourceConfig": "data",
    "EvaluateConfig": "evaluate",
    "GateConfig": "evaluate",
    "GateRule": "evaluate",
    "RegionConfig": "evaluate",
    "NetConfig": "model",
    "TrainConfig": "model",
    "PromoteConfig": "runtime",
    "RuntimeConfig": "runtime",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"wxmodels.config.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'wxmodels.config' has no attribute {name!r}")
