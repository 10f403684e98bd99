"""Validated configuration: one pydantic model per concern, loaded from YAML under ``configs/``.

Names are imported lazily so that compression methods can import :mod:`wxmodels.config.base`
without pulling in the whole cycle config (which itself lists the methods).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Strict": "base",
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
