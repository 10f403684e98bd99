"""Streaming from the store: fields read as they are used, in bounded memory.

The streamed fields must be the in-memory ones (same values, valid points, complete steps,
statistics), the data loader's batches the ones read in the training process, and a whole
training stage over an archive several times the memory it is given must stay within it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from tests.factories import SYN_VARS
from wxmodels.config.data import DataConfig
from wxmodels.config.stream import StreamConfig
from wxmodels.data.fields import compute_stats, fit_climatology, load_fields
from wxmodels.data.ingest import ingest
from wxmodels.data.lazy import ClimArray, StoreArray
from wxmodels.data.stats import Climatology
from wxmodels.data.store import Store
from wxmodels.data.synthetic import write_synthetic_files
from wxmodels.errors import DataError
from wxmodels.pipeline.teacher import _anomaly_moments
from wxmodels.training.loop import Batches, sample_order

REPO = Path(__file__).resolve().parents[2]
STREAM = StreamConfig(mode="stream", cache_mb=0.05, max_read_mb=0.2, loader_workers=2)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """Nine synthetic days; the fourth day has a hole at two valid cells in one step (one
    variable), which makes that step incomplete."""
    tmp = tmp_path_factory.mktemp("stream")
    files = write_synthetic_files(tmp / "land", days=9, nlat=8, nlon=12, seed=3)
    with xr.open_dataset(files[3], engine="h5netcdf") as ds:
        holed = ds.load()
    holed["t2m"][5, 2:4, 6] = np.nan
    files[3].unlink()
    holed.to_netcdf(files[3], engine="h5netcdf")
    cfg = DataConfig.model_validate(
        {
            "source": {
                "kind": "files",
                "paths": [str(tmp / "land" / "*.nc")],
                "accumulation_hours": 1.0,
            },
            "store": str(tmp / "store.zarr"),
            "variables": SYN_VARS,
            "time_chunk": 24,
        }
    )
    ingest(cfg)
    return Store(cfg.store)


def test_streamed_fields_are_the_fields_in_memory(store, tmp_path):
    mem = load_fields(store, SYN_VARS)
    st = load_fields(store, SYN_VARS, stream=STREAM, cache_dir=tmp_path)
    assert isinstance(st.data, StoreArray) and st.streamed and not mem.streamed
    assert st.data.shape == mem.data.shape
    assert np.array_equal(st.valid, mem.valid)
    assert np.array_equal(st.complete, mem.complete)
    assert (~st.complete).sum() == 1  # the step with the hole, found in the one pass
    assert np.array_equal(st.hours, mem.hours)
    keys = [
        5,
        -1,
        slice(3, 50),
        slice(None, None, 7),
        np.array([[1, 2], [30, 100]]),
        (slice(0, 60), 2),
        (np.arange(10), slice(1, 3)),
    ]
    for key in keys:
        a, b = mem.data[key], st.data[key]
        assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), key
    with pytest.raises(IndexError):
        st.data[len(mem.hours)]
    # the scan is cached per store version: a second load reads no chunk for it
    again = load_fields(store, SYN_VARS, stream=STREAM, cache_dir=tmp_path)
    assert again.data.reads == 0 and np.array_equal(again.complete, st.complete)


def test_statistics_block_by_block_equal_the_whole(store, tmp_path):
    mem = load_fields(store, SYN_VARS)
    st = load_fields(store, SYN_VARS, stream=STREAM, cache_dir=tmp_path)
    part = (0, 150)
    a, b = compute_stats(mem, part), compute_stats(st, part)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9)
    # the statistics are those of the numbers (not of a formula that agrees with itself)
    x = mem.data[:150][:, :, mem.valid].astype(np.float64)
    np.testing.assert_allclose(a["mean"], np.nanmean(x, axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(a["std"], np.nanstd(x, axis=(0, 2)), rtol=1e-4)
    ca, cb = fit_climatology(mem, part), fit_climatology(st, part)
    np.testing.assert_allclose(ca.xtx, cb.xtx, rtol=1e-9, atol=1e-9)
    # float32 products summed in another grouping: equal to a millionth of the largest term
    np.testing.assert_allclose(ca.xty, cb.xty, rtol=0, atol=1e-6 * np.abs(ca.xty).max())
    # the anomalies' moments (the teacher's damping and scales), streamed, against numpy
    clim = Climatology.from_accumulator(ca, mem.variables)
    call = clim.evaluate(mem.hours, mem.valid)
    lazy = ClimArray(lambda h: clim.evaluate(h, st.valid), st.hours, 4, st.valid.shape)
    rho, std, rstd = _anomaly_moments(st, lazy, part)
    anom = (mem.data[:150] - call[:150])[:, :, mem.valid].astype(np.float64)
    x0, x1 = anom[:-1], anom[1:]
    ok = np.isfinite(x0) & np.isfinite(x1)
    want = np.clip(
        np.where(ok, x0 * x1, 0).sum(axis=(0, 2)) / np.where(ok, x0 * x0, 0).sum(axis=(0, 2)),
        0.05,
        0.999,
    )
    np.testing.assert_allclose(rho, want, rtol=1e-6)
    np.testing.assert_allclose(std, np.nanstd(anom, axis=(0, 2)), rtol=1e-5)
    resid = np.where(ok, x1 - want[None, :, None] * x0, np.nan)
    np.testing.assert_allclose(rstd, np.nanstd(resid, axis=(0, 2)), rtol=1e-5)


def test_reads_are_bounded(store, tmp_path):
    st = load_fields(store, SYN_VARS, stream=STREAM, cache_dir=tmp_path)
    one_chunk = 24 * 4 * 8 * 12 * 4
    with pytest.raises(DataError, match="streaming bound"):
        np.asarray(st.data)  # the archive at once is refused, with its size
    before = st.data.reads
    for k in range(0, len(st.hours), 24):
        st.data[k]
    # the cache holds what its bound allows (here: one chunk), never the archive
    assert sum(x.nbytes for x in st.data._cache.values()) <= max(one_chunk, STREAM.cache_mb * 2**20)
    assert st.data.reads - before == 9


def test_chunk_aware_order():
    class F:
        streamed = True
        data = type("D", (), {"time_chunk": 24})()

    inits = np.arange(1, 24 * 40 - 5)
    rng = np.random.default_rng(0)
    order = sample_order(inits, rng, F(), window_chunks=4)
    assert sorted(order) == sorted(inits)
    chunks = order // 24
    # each window of 4 chunks is contiguous in the order: a batch reads at most a few chunks
    seen: list[set] = []
    for c in chunks:
        if not seen or (len(seen[-1]) == 4 and c not in seen[-1]):
            seen.append(set())
        seen[-1].add(c)
    assert sum(len(s) for s in seen) == 40
    assert all(len(s) <= 4 for s in seen)
    # and it is shuffled: the chunks do not come in time order, nor the samples within one
    assert list(dict.fromkeys(chunks)) != sorted(set(chunks))
    other = sample_order(inits, np.random.default_rng(1), F(), window_chunks=4)
    assert not np.array_equal(order, other)


def test_loader_workers_read_the_same_batches(store, tmp_path):
    st = load_fields(store, SYN_VARS, stream=STREAM, cache_dir=tmp_path)
    mem = load_fields(store, SYN_VARS)
    order = sample_order(np.arange(2, 200), np.random.default_rng(0), st, 2)
    cpu = torch.device("cpu")
    clim = Climatology.from_accumulator(fit_climatology(mem, (0, 150)), mem.variables)
    lazy = ClimArray(lambda h: clim.evaluate(h, st.valid), st.hours, 4, st.valid.shape)
    loaded = list(Batches(st, 2, cpu, lazy).epoch(order, 3, 16, STREAM))
    direct = Batches(mem, 2, cpu, clim.evaluate(mem.hours, mem.valid))
    assert len(loaded) == int(np.ceil(len(order) / 16))
    for idx, batch in loaded:
        for got, want in zip(batch, direct.get(idx, 3), strict=True):
            assert torch.equal(torch.nan_to_num(got, 1e9), torch.nan_to_num(want, 1e9))


_CHILD = textwrap.dedent(
    """
    import json, resource, sys, tracemalloc
    import numpy as np, torch
    from wxmodels.config.stream import StreamConfig
    from wxmodels.data.fields import compute_stats, fit_climatology, load_fields, make_split
    from wxmodels.config.data import SplitConfig
    from wxmodels.data.store import Store
    from wxmodels.nets import Forecaster, ForecasterSpec
    from wxmodels.training.loop import FitSettings, fit
    from wxmodels.data.globalgrid import GLOBAL_VARIABLES

    url, cache = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    # the first optimiser step imports torch._dynamo (~70 MiB of Python objects): before tracing
    p = torch.nn.Parameter(torch.zeros(1))
    p.sum().backward()
    torch.optim.AdamW([p]).step()
    tracemalloc.start()  # numpy's buffers are traced: what the process holds of the data
    stream = StreamConfig(mode="stream", cache_mb=8, max_read_mb=8, loader_workers=2)
    f = load_fields(Store(url), GLOBAL_VARIABLES, stream=stream, cache_dir=cache)
    split = make_split(f, SplitConfig(train_fraction=0.8, val_fraction=0.1, gap_hours=6))
    stats = compute_stats(f, split.train)
    fit_climatology(f, split.train)
    spec = ForecasterSpec(
        net={"arch": "unet", "width": 4, "depth": 1, "history": 2},
        variables=GLOBAL_VARIABLES, lat=f.lat.tolist(), lon=f.lon.tolist(), step_hours=1.0,
        **stats,
    )
    model = Forecaster(spec, valid=f.valid)
    tr = split.inits(f, "train", history=2, lead_steps=1)
    va = split.inits(f, "val", history=2, lead_steps=1)[:32]
    rep = fit(model, f, tr, va, FitSettings(epochs=1, rollout_epochs=0, batch_size=8,
              samples_per_epoch=160), stream=stream)
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    traced = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"peak": kib / 1024, "traced": traced / 2**20,
                      "archive": f.data.nbytes / 2**20, "samples": rep.samples,
                      "loss": rep.train_loss}))
    """
)


@pytest.mark.slow
def test_training_stage_in_bounded_memory_on_a_larger_archive(tmp_path):
    """Archives of 10 and 40 days of a 5-degree global grid (10 variables; 27 and 110 MiB)
    read by processes given 8 MiB of chunk cache and 8 MiB per read: load, statistics,
    climatology and an epoch through two loader workers. Every read stays within the bound
    (a stage that read the archive at once would fail), and what the process holds does not
    grow with the archive. (Its peak RSS, ~0.5-0.65 GiB, is torch and the model's compute;
    it varies by ~50 MiB from run to run, so the arrays are measured instead.)"""
    from wxmodels.data.globalgrid import GLOBAL_VARIABLES, write_global_files

    files = write_global_files(tmp_path / "land", days=40, resolution=5.0)
    runs = {}
    for days in (10, 40):
        land = tmp_path / f"land{days}"
        land.mkdir()
        for f in files[:days]:
            (land / f.name).symlink_to(f)
        cfg = DataConfig.model_validate(
            {
                "source": {"kind": "files", "paths": [str(land / "*.nc")], "accumulation_hours": 1},
                "store": str(tmp_path / f"store{days}.zarr"),
                "variables": GLOBAL_VARIABLES,
                "time_chunk": 24,
            }
        )
        ingest(cfg)
        runs[days] = subprocess.Popen(
            [sys.executable, "-c", _CHILD, cfg.store, str(tmp_path / "cache")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=tmp_path,
        )
    res = {}
    for days, proc in runs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        res[days] = json.loads(out.strip().splitlines()[-1])
        assert res[days]["samples"] == [160] and np.isfinite(res[days]["loss"]).all()
    short, long = res[10], res[40]
    assert long["archive"] > 10 * 8  # ten times what a process may hold of it
    # the arrays the process held at its peak (numpy's buffers, traced: no allocator noise):
    # a fraction of the archive, and the same for four times the archive
    assert long["traced"] < 0.5 * long["archive"], res
    assert abs(long["traced"] - short["traced"]) < 0.05 * (long["archive"] - short["archive"]), res
