"""The method registry: name -> :class:`Method` (fsspec style: private dict, read-only view)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["Method", "get_method", "methods", "register_method"]


@dataclass(frozen=True)
class Method:
    """A compression method.

    Attributes:
        name: the config's ``method`` literal.
        config: its pydantic config class.
        stage: ``torch`` methods map ``nn.Module -> nn.Module`` with
            ``apply(model, config, *, ctx, filter_fn=None)``; ``onnx`` methods map an fp32 ONNX
            file to a new one with ``apply(src, dst, config, *, ctx)`` and run after export.
        apply: the transform.
    """

    name: str
    config: type
    stage: Literal["torch", "onnx"]
    apply: Callable[..., Any]


_methods: dict[str, Method] = {}
methods: MappingProxyType[str, Method] = MappingProxyType(_methods)


def register_method(method: Method, *, clobber: bool = False) -> Method:
    """Register ``method`` under its name; a second registration raises unless ``clobber``."""
    if method.name in _methods and not clobber:
        raise ValueError(f"compression method {method.name!r} is already registered")
    _methods[method.name] = method
    return method


def get_method(name_or_config: Any) -> Method:
    """Look a method up by name or by a config instance; the error lists the known names."""
    name = getattr(name_or_config, "method", name_or_config)
    try:
        return _methods[name]
    except KeyError:
        raise KeyError(
            f"unknown compression method {name!r}; known: {', '.join(sorted(_methods))}"
        ) from None
