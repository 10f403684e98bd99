"""A model registry over any fsspec URL: immutable, checksummed versions, aliases with history.

The names are loaded on first use, so that :mod:`wxmodels.registry.names` (what a valid name,
reference and manifest are) is importable without fsspec or cryptography (the edge runtime).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wxmodels.registry.cache import Cache
    from wxmodels.registry.core import AliasEvent, Registry, parse_ref, validate_name

__all__ = ["AliasEvent", "Cache", "Registry", "parse_ref", "validate_name"]

_WHERE = {
    "AliasEvent": "wxmodels.registry.core",
    "Cache": "wxmodels.registry.cache",
    "Registry": "wxmodels.registry.core",
    "parse_ref": "wxmodels.registry.names",
    "validate_name": "wxmodels.registry.names",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
