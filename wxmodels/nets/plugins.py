"""Bring your own core: architectures other than the built-in ones.

``net.arch`` names a core in one of three ways:

* a built-in: ``unet``, ``resnet``, ``transformer``;
* a name registered by an installed package in the entry-point group ``wxcompress.cores``
  (``[project.entry-points."wxcompress.cores"] mynet = "mypkg.cores:build"``);
* ``module:factory`` (``mypkg.cores:build``), an importable callable: this imports and runs that
  module's code, as any Python plug-in does.

A factory is called as ``factory(cin=, cout=, grid=(H, W), width=, depth=, **net.options)`` and
returns an ``nn.Module`` mapping ``(B, cin, H, W) -> (B, cout, H, W)``; the forecaster wraps it
with normalisation, statics, masks, the climatology and time features, so the core sees
normalised fields and returns a normalised tendency. Naming its last layer ``head`` lets a
linear start zero the core's output. The compression methods act on the core's ``nn.Linear``
and ``nn.Conv2d`` layers (pruning, clustering, low rank, int8); factorised layers are recorded
as overrides and re-applied after the factory builds the core (:func:`apply_overrides`), so a
compressed plug-in core reloads from its spec alone.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from wxmodels.nets.layers import LowRankConv2d, LowRankLinear

__all__ = [
    "BUILTIN",
    "ENTRY_POINTS",
    "CoreSource",
    "apply_overrides",
    "core_source",
    "resolve",
]

BUILTIN = ("unet", "resnet", "transformer")
ENTRY_POINTS = "wxcompress.cores"


@dataclass(frozen=True)
class CoreSource:
    """Where a core comes from, for the registry's lineage and the model card."""

    arch: str
    family: str
    """``conv`` or ``transformer`` for the built-ins; ``plugin`` otherwise."""
    plugin: str | None = None
    """The entry point's or the ``module:factory``'s target."""
    distribution: str | None = None
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _entry_point(name: str) -> md.EntryPoint | None:
    found = [ep for ep in md.entry_points(group=ENTRY_POINTS) if ep.name == name]
    return found[0] if found else None


def core_source(arch: str) -> CoreSource:
    """Describe ``arch`` (raises a one-line ``ValueError`` when it names nothing)."""
    if arch in BUILTIN:
        return CoreSource(arch, "transformer" if arch == "transformer" else "conv")
    ep = _entry_point(arch)
    if ep is not None:
        dist = ep.dist
        return CoreSource(
            arch,
            "plugin",
            plugin=ep.value,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
    if ":" in arch:
        module = arch.split(":", 1)[0]
        top = module.split(".", 1)[0]
        version = None
        try:
            version = md.version(top)
        except md.PackageNotFoundError:
            mod = importlib.import_module(module)
            version = getattr(mod, "__version__", None)
        return CoreSource(arch, "plugin", plugin=arch, version=version)
    known = sorted({*BUILTIN, *(ep.name for ep in md.entry_points(group=ENTRY_POINTS))})
    raise ValueError(
        f"net.arch {arch!r} is neither a built-in core, nor registered in the entry-point group "
        f"{ENTRY_POINTS!r}, nor 'module:factory'; known: {', '.join(known)}"
    )


def resolve(arch: str) -> Callable[..., nn.Module]:
    """The factory of a plug-in ``arch`` (not a built-in)."""
    ep = _entry_point(arch)
    try:
        if ep is not None:
            factory = ep.load()
        elif ":" in arch:
            module, attr = arch.split(":", 1)
            factory = importlib.import_module(module)
            for part in attr.split("."):
                factory = getattr(factory, part)
        else:
            core_source(arch)  # raises with the known names
            raise AssertionError(arch)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"net.arch {arch!r} cannot be loaded: {e}") from e
    if not callable(factory):
        raise ValueError(f"net.arch {arch!r} is not callable")
    return factory


def build_plugin(
    arch: str,
    *,
    cin: int,
    cout: int,
    grid: tuple[int, int],
    width: int,
    depth: int,
    options: Mapping[str, Any],
    overrides: Mapping[str, Mapping[str, Any]],
) -> nn.Module:
    """Call the plug-in's factory and re-apply the compression overrides to what it built."""
    core = resolve(arch)(cin=cin, cout=cout, grid=grid, width=width, depth=depth, **options)
    if not isinstance(core, nn.Module):
        raise ValueError(f"net.arch {arch!r} returned {type(core).__name__}, not an nn.Module")
    apply_overrides(core, overrides)
    return core


def apply_overrides(core: nn.Module, overrides: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace each ``nn.Linear``/``nn.Conv2d`` named in ``overrides`` with ``{"rank": r}`` by
    its low-rank form (same shapes; the weights come from the checkpoint or the method)."""
    for fqn, o in overrides.items():
        unknown = set(o) - {"rank"}
        if unknown:
            raise ValueError(
                f"override {fqn}: {sorted(unknown)} needs a built-in core (a plug-in core only "
                "takes low-rank overrides)"
            )
        parent, _, leaf = fqn.rpartition(".")
        try:
            owner = core.get_submodule(parent) if parent else core
            layer = getattr(owner, leaf)
        except AttributeError as e:
            raise ValueError(f"architecture overrides name an unknown layer: {fqn}") from e
        setattr(owner, leaf, low_rank_of(layer, int(o["rank"])))


def low_rank_of(layer: nn.Module, rank: int) -> LowRankLinear | LowRankConv2d:
    """An untrained low-rank module with ``layer``'s shapes (``Linear`` or ``Conv2d``)."""
    if isinstance(layer, nn.Linear):
        return LowRankLinear(layer.in_features, layer.out_features, rank, layer.bias is not None)
    if isinstance(layer, nn.Conv2d):
        return LowRankConv2d(
            layer.in_channels,
            layer.out_channels,
            (layer.kernel_size[0], layer.kernel_size[1]),
            rank,
            bias=layer.bias is not None,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            padding_mode=layer.padding_mode,
        )
    raise ValueError(f"a low-rank form exists for Linear and Conv2d, not {type(layer).__name__}")
