"""What a replay hands the flows: the overrides of each tick, and what it records of the store,
the registry and a retrain's outcome. No Prefect here (see ``flows/replay.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd

from wxmodels.config.cycle import CycleConfig
from wxmodels.config.data import LandingSourceConfig, SourceOptions, SyntheticSourceConfig
from wxmodels.config.replay import ReplayConfig, parse_period
from wxmodels.data.store import Store
from wxmodels.errors import ConfigError
from wxmodels.pipeline.records import Evaluation, Promotion
from wxmodels.registry import Registry
from wxmodels.replay.records import Retrain, StoreState, Timeline

__all__ = [
    "aliases",
    "landing_overrides",
    "load_timeline",
    "replay_dir",
    "retrain_record",
    "source_files",
    "split_as_of",
    "store_state",
    "tick_overrides",
]

LIVE_ALIASES = ("teacher", "edge", "hpc")


def replay_dir(cfg: CycleConfig, rp: ReplayConfig) -> Path:
    return Path(rp.workdir) if rp.workdir else Path(cfg.workdir) / "replay"


def source_files(cfg: CycleConfig) -> list[str]:
    """The source's files, as glob patterns (a synthetic source writes its day files first)."""
    src = cfg.data.source
    if isinstance(src, SyntheticSourceConfig):
        from wxmodels.data.sources import make_source

        refs = make_source(src, variables=cfg.data.variables).list_inputs()
        return [r.id for r in refs]
    if src.kind in ("files", "landing"):
        return list(src.expanded())
    raise ConfigError(
        f"a replay serves file sources (files, landing, synthetic), not {src.kind!r}: "
        "export the period to NetCDF files first"
    )


def landing_overrides(cfg: CycleConfig, rdir: Path, files: list[str]) -> list[str]:
    """The overrides that point the cycle at the replay's landing directory, store, registry
    and workdir, keeping the source's reading options (renames, units, grid, ...)."""
    src = cfg.data.source
    keep = {k: v for k, v in src.model_dump(mode="json").items() if k in SourceOptions.model_fields}
    suffix = {Path(p).suffix for p in files}
    landing = LandingSourceConfig(
        **keep,
        directory=str(rdir / "landing"),
        pattern="*" + (suffix.pop() if len(suffix) == 1 else ""),
        engine=getattr(src, "engine", "auto"),
    )
    return [
        f"workdir={rdir / 'work'}",
        f"data.store={rdir / 'store.zarr'}",
        f"promote.registry={rdir / 'registry'}",
        "data.source=" + json.dumps(landing.model_dump(mode="json")),
    ]


def split_as_of(rp: ReplayConfig, tick: pd.Timestamp) -> tuple[str, str]:
    """``(val_start, test_start)`` of the cycle at ``tick``."""
    test = tick - parse_period(rp.split.test)
    return str(test - parse_period(rp.split.val)), str(test)


def tick_overrides(base: list[str], rp: ReplayConfig, tick: pd.Timestamp) -> list[str]:
    val, test = split_as_of(rp, tick)
    # quoted: YAML would read a bare date as a datetime, the config wants the text
    return [
        *base,
        f"data.split.val_start={json.dumps(val)}",
        f"data.split.test_start={json.dumps(test)}",
    ]


def store_state(cfg: CycleConfig) -> StoreState:
    store = Store(cfg.data.store, cfg.data.storage_options)
    c = store.read_commit()
    fs, path = fsspec.core.url_to_fs(cfg.data.store, **cfg.data.storage_options)
    size = int(fs.du(path)) if c is not None else 0
    if c is None:
        return StoreState(n_time=0, start=None, end=None, bytes=0, version=None)
    return StoreState(n_time=c.n_time, start=c.start, end=c.end, bytes=size, version=c.version)


def aliases(cfg: CycleConfig) -> dict[str, str]:
    """The registry's aliases of the model (empty before the first promotion)."""
    reg = Registry.for_config(cfg.promote)
    if cfg.name not in reg.names():
        return {}
    return reg.aliases(cfg.name)


def retrain_record(
    cfg: CycleConfig,
    teacher: Any,
    train_wall: float,
    cvp_wall: float,
    promoted: list[Promotion] | None,
    evaluation: Evaluation | None,
) -> Retrain:
    """What a retrain at a tick came to (``promoted``/``evaluation`` ``None``: the teacher was
    already the registry's, nothing ran after it)."""
    refused: list[str] = []
    gates: dict[str, list[str]] = {}
    teacher_promoted = False
    if evaluation is not None:
        inc = evaluation.incumbent
        if inc is not None and not inc.verdict.promote:
            refused = list(inc.verdict.reasons) or ["worse than the registry's teacher"]
        gates = {c.name: list(c.gate.reasons) for c in evaluation.candidates if not c.gate.passed}
        teacher_promoted = any(p.kind == "teacher" for p in promoted or [])
    fit = teacher.fit
    return Retrain(
        teacher_id=teacher.id,
        store_version=teacher.store_version,
        train_window=tuple(fit["train_window"]) if fit.get("train_window") else None,
        train_inits=fit.get("train_inits"),
        train_wall_s=train_wall,
        cvp_wall_s=cvp_wall,
        teacher_promoted=teacher_promoted,
        refused=refused,
        promotions=[
            {"version": p.version, "cell": p.cell, "aliases": p.aliases, "moved": p.moved}
            for p in promoted or []
        ],
        gates=gates,
    )


def load_timeline(path: Path, fresh: Timeline) -> Timeline:
    """The timeline to continue: ``fresh`` when none exists, the saved one when its settings
    are the same, else an error (another replay lives in that directory)."""
    if not path.exists():
        return fresh
    old = Timeline.load(path)
    same = (old.name, old.replay, old.config, old.overrides) == (
        fresh.name,
        fresh.replay,
        fresh.config,
        fresh.overrides,
    )
    if not same:
        raise ConfigError(
            f"{path.parent} holds a replay with other settings ({old.config}, "
            f"{old.replay['start']}..{old.replay['end']}); use another --workdir or remove it"
        )
    return old
