"""Compression methods, one file each, registered by config type (see :mod:`.registry`)."""

# importing the method modules registers them
from wxmodels.compress import (
    cluster,
    depth,
    distill,
    dynamic,
    int8,
    lowrank,
    prune,
    qat,
    structured,
)
from wxmodels.compress.registry import Method, get_method, methods, register_method
from wxmodels.config.compress import CellConfig, MethodConfig

__all__ = [
    "CellConfig",
    "Method",
    "MethodConfig",
    "cluster",
    "depth",
    "distill",
    "dynamic",
    "get_method",
    "int8",
    "lowrank",
    "methods",
    "prune",
    "qat",
    "register_method",
    "structured",
]
