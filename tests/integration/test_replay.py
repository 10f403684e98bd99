"""A fast replay through the real flows (Prefect server, the session's Dask cluster,
registry): a few synthetic days ticked daily, preliminary data revised by the final, the
replay killed in the middle of a tick and resumed, a degraded challenger refused by the gate."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from tests.conftest import REPO
from tests.factories import tiny_cycle_config
from wxmodels.data.store import Store
from wxmodels.registry import Registry
from wxmodels.replay.archive import served
from wxmodels.replay.plan import LIVE_ALIASES
from wxmodels.replay.records import Timeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKS = ["2024-01-07", "2024-01-08", "2024-01-09", "2024-01-10"]


def _wxc(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def replayed(prefect_server, dask_cluster, tmp_path_factory):
    """The replay killed after tick 2's retrain, its config then degraded (teachers trained
    from nothing), resumed to the end."""
    tmp = tmp_path_factory.mktemp("replay")
    raw = tiny_cycle_config(tmp)
    raw["data"]["source"]["days"] = 10
    # every epoch runs whatever the machine's load (no wall-clock cap decides what is trained)
    raw["train"]["max_minutes"] = 10.0
    raw["compress"]["cells"] = [
        {"name": "int8", "steps": [{"method": "int8", "calibration_samples": 8}]}
    ]
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    rdir = tmp / "replay"
    args = [
        "replay",
        "--config",
        str(config),
        "--start",
        TICKS[0],
        "--end",
        TICKS[-1],
        "--ingest-every",
        "1D",
        "--retrain-every",
        "2D",
        "--val",
        "1D",
        "--test",
        "1D",
        "--revisions",
        "--revision-noise",
        "0.3",
        "--workdir",
        str(rdir),
    ]
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "WXC_CRASH_AT": "replay:after-train:2"}
    killed = _wxc(args, env)
    before = Timeline.load(rdir / "timeline.json")
    # from now on a retrain produces an untrained teacher that persists its last state (no
    # climatology input, no linear start): persisting solar radiation for 3-6 h across the
    # diurnal cycle is several times worse than any model that knows the hour, so the gate must
    # keep the old one whatever the old one's quality
    raw["train"].update({"init": "scratch", "epochs": 0, "rollout_epochs": 0})
    raw["net"].update({"linear_init": False, "climatology": False})
    config.write_text(yaml.safe_dump(raw))
    env.pop("WXC_CRASH_AT")
    resumed = _wxc(args, env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return tmp, rdir, killed, before, resumed, Timeline.load(rdir / "timeline.json")


def test_killed_replay_resumes_where_it_stopped(replayed):
    _, rdir, killed, before, resumed, tl = replayed
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert [t.index for t in before.ticks] == [0, 1]
    assert "resuming the replay at tick 2 of 4" in resumed.stderr + resumed.stdout
    assert [t.time[:10] for t in tl.ticks] == TICKS
    assert tl.ticks[:2] == before.ticks  # what was done is kept as it was
    t2 = tl.ticks[2]
    assert t2.resumed and t2.appended == 24 and t2.delivered.files == 1  # its first arrival
    # nothing was delivered twice
    names = [(e["file"], e["kind"]) for e in served(rdir / "landing")]
    assert len(names) == len(set(names))


def test_no_step_after_the_tick_is_ever_read(replayed):
    """What the archive served, what the store held, what each teacher trained on and what
    the live baselines were fitted on all end before the tick."""
    _, rdir, _, _, _, tl = replayed
    log = served(rdir / "landing")
    assert log and all(pd.Timestamp(e["last"]) < pd.Timestamp(e["tick"]) for e in log)
    for p in (rdir / "landing").glob("*.nc"):
        last_tick = max(pd.Timestamp(e["tick"]) for e in log if e["file"] == p.name)
        with xr.open_dataset(p) as ds:
            assert pd.Timestamp(ds["time"].values.max()) < last_tick
    for t in tl.ticks:
        tick = pd.Timestamp(t.time)
        assert pd.Timestamp(t.store.end) < tick
        assert t.store.end == str(tick - pd.Timedelta(hours=1))
        if t.retrain is not None:
            assert pd.Timestamp(t.retrain.train_window[1]) < tick
        if t.live is not None:
            since = pd.Timestamp(t.live.since)
            assert since == pd.Timestamp(tl.ticks[t.index - 1].time)
            assert pd.Timestamp(t.live.fit_end) < since


def test_live_scores_are_of_the_aliases_as_they_stood(replayed):
    _, _, _, _, _, tl = replayed
    assert tl.ticks[0].live is None
    for prev, t in zip(tl.ticks, tl.ticks[1:], strict=False):
        assert t.live is not None and t.live.n_inits > 0
        assert t.live.models == {a: v for a, v in prev.aliases.items() if a in LIVE_ALIASES}
        assert {"teacher", "edge", "hpc", "persistence", "climatology", "ridge"} <= set(
            t.live.scores
        )
        rmse = t.live.scores["teacher"]["rmse"]
        assert all(x is not None and np.isfinite(x) for v in rmse.values() for x in v.values())


def test_preliminary_periods_are_revised_and_the_retrain_sees_the_final(replayed):
    tmp, rdir, _, _, _, tl = replayed
    assert all(t.revised == 24 for t in tl.ticks[1:])
    assert all(t.delivered.preliminary == 1 for t in tl.ticks)
    # the retrain at tick 2 trained on the store version that holds the revision
    assert tl.ticks[2].retrain.store_version == tl.ticks[2].store.version
    # every period but the last (still preliminary) holds the final values
    store = Store(str(rdir / "store.zarr")).open()
    for day in pd.date_range("2024-01-01", "2024-01-08"):
        with xr.open_dataset(tmp / "landing" / f"era5-synthetic_{day:%Y%m%d}.nc") as src:
            np.testing.assert_allclose(
                store["2m_temperature"].sel(time=f"{day:%Y-%m-%d}").values,
                src["t2m"].sortby("latitude").values,
                rtol=1e-6,
            )
    with xr.open_dataset(tmp / "landing" / "era5-synthetic_20240109.nc") as src:
        prelim = store["2m_temperature"].sel(time="2024-01-09").values
        assert not np.allclose(prelim, src["t2m"].sortby("latitude").values)


def test_degraded_challenger_is_refused_and_nothing_moves(replayed):
    _, rdir, _, _, _, tl = replayed
    first, second = tl.ticks[0].retrain, tl.ticks[2].retrain
    assert first.teacher_promoted and not first.refused
    assert {a for p in first.promotions for a in p["moved"]} == {"teacher", "edge", "hpc"}
    assert not second.teacher_promoted and second.promotions == []
    assert any("current teacher" in r for r in second.refused)
    assert tl.ticks[2].aliases == tl.ticks[1].aliases == tl.ticks[3].aliases
    # the registry's histories tell the same story: one move per alias
    reg = Registry(str(rdir / "registry"))
    for alias in ("teacher", "edge", "hpc"):
        assert [e.version for e in reg.history("tiny", alias)] == [tl.ticks[0].aliases[alias]]


def test_timeline_is_published_as_prefect_artifacts(replayed, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read(key: str):
        async with get_client() as c:
            return await c.read_latest_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )

    table = asyncio.run(read("replay-tiny"))
    assert len(table) == 1 and len(eval_table(table[0].data)) == len(TICKS)
    report = asyncio.run(read("replay-tiny-report"))
    assert report and "teacher refused" in report[0].data


def eval_table(data) -> list:
    import json

    return json.loads(data) if isinstance(data, str) else data
