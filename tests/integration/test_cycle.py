"""The whole cycle as Prefect flows (temporary server, the session's Dask cluster), then
deployers' use: registry list/show/pull and predict through the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.factories import tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.errors import DataError
from wxmodels.pipeline.records import Evaluation, MatrixResult, TeacherRecord
from wxmodels.registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cycle_run(prefect_server, dask_cluster, tmp_path_factory):
    from flows.cycle import cycle_flow

    tmp = tmp_path_factory.mktemp("cycle")
    raw = tiny_cycle_config(tmp)
    raw["compress"]["cells"].append(
        {"name": "broken", "steps": [{"method": "lowrank", "ratio": 1.0, "finetune_epochs": 0}]}
    )
    cfg = CycleConfig.model_validate(raw)
    report = cycle_flow(cfg)
    return tmp, cfg, report


def test_report_shape(cycle_run):
    _, cfg, rep = cycle_run
    for v in cfg.data.variables:
        for lead in ("1", "3", "6"):
            assert rep["teacher"]["rmse"][v][lead] > 0
            assert rep["baselines"]["persistence"]["rmse"][v][lead] > 0
            assert rep["baselines"]["climatology"]["rmse"][v][lead] > 0
    names = {c["name"] for c in rep["candidates"]}
    assert names == {"prune", "int8", "distill-int8"}
    for c in rep["candidates"]:
        assert {"name", "method", "pack_bytes", "latency_ms_batch1", "rmse", "acc", "gate"} <= set(
            c
        )
        assert c["pack_bytes"] > 0 and c["latency_ms_batch1"] > 0
        assert isinstance(c["gate"]["passed"], bool) and isinstance(c["gate"]["reasons"], list)
    assert rep["teacher_onnx_bytes"] > 0 and rep["teacher_latency_ms_batch1"] > 0
    # the Pareto front: the smallest candidate is always on it (nothing is smaller)
    smallest = min(rep["candidates"], key=lambda c: c["pack_bytes"])
    assert smallest["pareto"] is True
    assert all(c["relative_rmse"] > 0 for c in rep["candidates"])
    from flows.state import load_latest

    evaluation = load_latest(cfg, "evaluate", Evaluation, "test")
    assert evaluation.pareto == [c["name"] for c in rep["candidates"] if c["pareto"]]
    assert any(Path(p).name == "pareto.png" and Path(p).exists() for p in evaluation.plots)
    assert set(rep["wall_s"]) >= {"ingest", "train", "compress", "evaluate", "promote"}


def test_protected_layer_is_left_alone(cycle_run):
    tmp, cfg, rep = cycle_run
    from flows.state import load_latest

    cells = {c.name: c for c in load_latest(cfg, "compress", MatrixResult, "test").cells}
    (protected,) = cells["prune"].protected
    sens = json.loads(next((Path(cfg.workdir) / "sensitivity").glob("*.json")).read_text())
    assert protected == max(sens, key=sens.get)
    assert cells["int8"].protected == []


def test_failing_cell_is_reported_and_others_go_on(cycle_run):
    _, _, rep = cycle_run
    (f,) = rep["failures"]
    assert f["name"] == "broken" and "no layer would shrink" in f["error"]
    assert len(rep["candidates"]) == 3


def test_promoted_versions_have_matching_checksums(cycle_run):
    tmp, cfg, rep = cycle_run
    reg = Registry(cfg.promote.registry)
    aliases = {a for p in rep["promoted"] for a in p["aliases"]}
    assert {"teacher", "edge", "hpc"} <= aliases
    for p in rep["promoted"]:
        man = reg.manifest(f"{p['model']}@{p['version']}")
        vdir = Path(cfg.promote.registry) / p["model"] / "versions" / p["version"]
        for name, meta in man["files"].items():
            data = (vdir / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == meta["sha256"]
            assert len(data) == meta["size"]
        lin = man["lineage"]
        assert lin["store_version"] and lin["teacher"] and lin["time_range"]
        assert man["signature"]["variables"]


def test_cycle_flow_runs_are_recorded(cycle_run, prefect_server):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        names = {r.name for r in runs}
        assert {
            "cycle-tiny",
            "ingest-tiny",
            "train-tiny",
            "compress-tiny",
            "evaluate-tiny",
            "promote-tiny",
        } <= names
        assert all(r.state.is_completed() for r in runs if r.name.endswith("-tiny"))
        arts = client.read_artifacts()
        keys = {a.key for a in arts}
        assert {"scorecard", "compression-matrix", "model-card-edge"} <= keys


def test_rerun_reuses_and_adds_nothing(cycle_run):
    from flows.cycle import cycle_flow

    _, cfg, rep = cycle_run
    again = cycle_flow(cfg)
    assert again["store"]["appended"] == 0
    assert again["teacher"]["id"] == rep["teacher"]["id"]

    # the same models keep their versions (the edge winner is chosen by size: deterministic)
    def by_alias(r):
        return {a: p["version"] for p in r["promoted"] for a in p["aliases"]}

    assert by_alias(again)["teacher"] == by_alias(rep)["teacher"]
    assert by_alias(again)["edge"] == by_alias(rep)["edge"]


def _wxc(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_cli_registry_pull_and_predict(cycle_run):
    tmp, cfg, _ = cycle_run
    reg = cfg.promote.registry
    r = _wxc("registry", "list", "--registry", reg)
    assert r.returncode == 0 and "edge" in r.stdout
    r = _wxc("registry", "show", "tiny@edge", "--registry", reg)
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "tiny"
    r = _wxc("registry", "pull", "tiny@edge", str(tmp / "pulled"), "--registry", reg)
    assert r.returncode == 0, r.stderr
    assert (tmp / "pulled" / "model.onnx").exists()
    out = tmp / "fc.nc"
    start = "2024-01-08T00:00"
    r = _wxc(
        "predict",
        "--model",
        "tiny@edge",
        "--start",
        start,
        "--leads",
        "1,3,6",
        "--out",
        str(out),
        "--registry",
        reg,
        env={"WXC_HOME": str(tmp / "home")},
    )
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(out) as ds:
        assert ds.sizes["lead_time"] == 3
        assert list(ds.lead_time.values) == [1.0, 3.0, 6.0]
        assert ds["2m_temperature"].attrs["units"] == "K"
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert "tiny@" in ds.attrs["source"]
        assert float(ds["2m_temperature"].mean()) > 200


def test_predict_hpc_torch_batch_matches_edge_onnx(cycle_run):
    """Batch inference from the safetensors weights in torch gives the ONNX model's forecasts,
    initialisation by initialisation, in one CF dataset."""
    from wxmodels.predict import forecast

    tmp, cfg, _ = cycle_run
    reg = Registry(cfg.promote.registry)
    model = reg.pull(f"{cfg.name}@teacher")
    starts = ["2024-01-08T00:00", "2024-01-08T06:00", "2024-01-09T00:00"]
    edge = forecast(model, cfg.data.store, starts, [1, 3], runtime="onnx", batch_size=2)
    hpc = forecast(model, cfg.data.store, starts, [1, 3], runtime="torch", batch_size=3)
    assert edge.sizes["forecast_reference_time"] == 3 and edge.sizes["lead_time"] == 2
    # the ONNX file is the lean form (raw fields into composed weights): float32 rounding in
    # another order than torch's, carried through the rollout and the clipping at zero, stays
    # within a few thousandths of each variable's spread
    for v in cfg.data.variables:
        spread = float(np.nanstd(edge[v].values))
        np.testing.assert_allclose(
            hpc[v].values, edge[v].values, rtol=1e-4, atol=1e-2 * spread, err_msg=v
        )
    one = forecast(model, cfg.data.store, starts[1], [1, 3])
    np.testing.assert_allclose(
        one["2m_temperature"].values[0], edge["2m_temperature"].values[1], rtol=1e-5
    )
    assert str(edge.valid_time.values[1, 1])[:13] == "2024-01-08T09"
    with pytest.raises(DataError, match="does not hold"):
        forecast(model, cfg.data.store, "1990-01-01T00:00", [1])
    r = _wxc(
        "predict",
        "--model",
        f"{cfg.name}@teacher",
        "--start",
        ",".join(starts),
        "--leads",
        "1",
        "--runtime",
        "torch",
        "--out",
        str(tmp / "hpc.zarr"),
        "--registry",
        cfg.promote.registry,
        "--offline",
    )
    assert r.returncode == 0, r.stderr
    with xr.open_zarr(tmp / "hpc.zarr", consolidated=False) as ds:
        assert ds.sizes["forecast_reference_time"] == 3
        assert ds.attrs["model_runtime"] == "torch"


def test_deployer_forecast_is_the_scored_forecast(cycle_run):
    """What a deployer runs is what was scored: every promoted profile, pulled and run by
    `wxc predict`, gives the evaluation's own forecasts for the same inits (onnxruntime; and
    torch where the version's torch weights are the scored model, refused where they are
    not), variable by variable, in the store's units."""
    from flows.state import load_latest
    from wxmodels.pipeline.evaluate import model_forecasts

    tmp, cfg, rep = cycle_run
    ev = load_latest(cfg, "evaluate", Evaluation, "test")
    scored = {c.name: c.onnx for c in ev.candidates}
    scored["teacher"] = load_latest(cfg, "train", TeacherRecord, "test").onnx
    # the synthetic variables are not in alphabetical order: a sorted order would show here
    assert cfg.data.variables != sorted(cfg.data.variables)
    setup = None
    checked = set()
    for p in rep["promoted"]:
        arr, setup = model_forecasts(cfg, scored[p["cell"]], setup)
        f = setup.run.fields
        pick = [0, len(setup.inits) // 2, len(setup.inits) - 1]
        starts = ",".join(str(f.times[setup.inits[k]]) for k in pick)
        man = Registry(cfg.promote.registry).manifest(f"{p['model']}@{p['version']}")
        assert [v["name"] for v in man["signature"]["variables"]] == cfg.data.variables
        for runtime in ("onnx", "torch"):
            out = tmp / f"scored-{p['version']}-{runtime}.nc"
            r = _wxc(
                "predict",
                "--model",  # the version the alias got (a later run may move the alias)
                f"{p['model']}@{p['version']}",
                "--start",
                starts,
                "--leads",
                ",".join(str(h) for h in cfg.evaluate.leads_h),
                "--runtime",
                runtime,
                "--out",
                str(out),
                "--registry",
                cfg.promote.registry,
            )
            if runtime not in man["runtimes"]:
                assert r.returncode == 2 and "use --runtime onnx" in r.stderr, r.stderr
                continue
            assert r.returncode == 0, r.stderr
            # onnxruntime: the same file on the same inputs; torch: float32 kernels that differ
            # in the last bits, carried through a rollout. Int8 graphs run kernels chosen by
            # batch size (the evaluation batches many inits, the deployer three): a value on a
            # rounding boundary may land one quantization step apart, and the rollout carries it
            # The ONNX file is the lean form: against torch, float32 rounding in another order,
            # carried through the rollout and the clipping at zero (a few thousandths of a std)
            int8 = any(s["method"] in ("int8", "dynamic") for s in man["recipe"])
            tol = 1e-3 if runtime == "torch" or int8 else 1e-6
            spread_tol = 1e-2 if runtime == "torch" else tol
            with xr.open_dataset(out) as ds:
                for i, v in enumerate(cfg.data.variables):
                    want = arr[pick, :, i]
                    np.testing.assert_allclose(
                        ds[v].values,
                        want,
                        rtol=tol,
                        atol=spread_tol * np.nanstd(want),
                        err_msg=f"{p['cell']} {runtime} {v}",
                    )
            checked.add((p["cell"], runtime))
    assert {("teacher", "onnx"), ("teacher", "torch")} <= checked
    assert len({c for c, _ in checked}) == len({p["cell"] for p in rep["promoted"]})


def test_cli_offline_pull_and_gc(cycle_run):
    tmp, cfg, _ = cycle_run
    reg = cfg.promote.registry
    env = {"WXC_CACHE": str(tmp / "cli-cache")}
    r = _wxc("registry", "pull", f"{cfg.name}@edge", "--registry", reg, "--offline", env=env)
    assert r.returncode == 2 and "not in the cache" in r.stderr
    r = _wxc("registry", "pull", f"{cfg.name}@edge", "--registry", reg, env=env)
    assert r.returncode == 0 and "checksums verified" in r.stdout
    r = _wxc("registry", "pull", f"{cfg.name}@edge", "--registry", reg, "--offline", env=env)
    assert r.returncode == 0 and "offline" in r.stdout, r.stderr
    orphan = Path(reg) / cfg.name / "versions" / "0123456789ab"
    orphan.mkdir()
    (orphan / "model.onnx").write_bytes(b"half")
    r = _wxc("registry", "gc", "--older-than", "0", "--dry-run", "--registry", reg)
    assert r.returncode == 0 and "would remove 1 item" in r.stdout and orphan.exists()
    r = _wxc("registry", "gc", "--older-than", "0", "--registry", reg)
    assert r.returncode == 0 and "removed 1 item" in r.stdout and not orphan.exists()


def test_cli_pull_of_tampered_artifact_fails(cycle_run):
    tmp, cfg, rep = cycle_run
    edge = next(p for p in rep["promoted"] if "edge" in p["aliases"])
    f = Path(cfg.promote.registry) / "tiny" / "versions" / edge["version"] / "model.onnx"
    original = f.read_bytes()
    try:
        f.write_bytes(original[:-8] + b"tampered")
        r = _wxc(
            "registry",
            "pull",
            "tiny@edge",
            str(tmp / "pulled2"),
            "--registry",
            cfg.promote.registry,
            env={"WXC_CACHE": str(tmp / "empty-cache")},  # nothing verified before
        )
        assert r.returncode == 2
        assert "checksum mismatch" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2
    finally:
        f.write_bytes(original)


# -- retraining: the registry's teacher is the one to beat -------------------------------------
def _with(cfg: CycleConfig, **sections: dict) -> CycleConfig:
    raw = cfg.model_dump()
    for section, values in sections.items():
        node = raw
        *path, last = section.split(".")
        for p in path:
            node = node[p]
        node[last] = {**node[last], **values}
    return CycleConfig.model_validate(raw)


def test_worse_retrained_teacher_is_not_promoted(cycle_run):
    """A teacher made worse (untrained: random network, no least-squares start, no epochs) is
    scored against the registry's current teacher on the same test window and refused; the
    registry does not change."""
    from flows.stages import evaluate_flow, promote_flow, train_flow

    _, cfg, rep = cycle_run
    reg = Registry(cfg.promote.registry)
    aliases = reg.aliases(cfg.name)
    n_versions = len(reg.versions(cfg.name))
    worse = _with(
        cfg,
        train={"init": "scratch", "epochs": 0, "rollout_epochs": 0},
        net={"linear_init": False},
    )
    teacher = train_flow(worse)
    assert teacher.id != rep["teacher"]["id"] and teacher.parent is None
    evaluation = evaluate_flow(worse, teacher, MatrixResult(cells=[]))
    inc = evaluation.incumbent
    assert inc.version == aliases["teacher"]
    assert inc.teacher_id == rep["teacher"]["id"]
    v = inc.verdict
    assert v.promote is False
    assert v.mean_ratio > 1 + worse.promote.teacher_tolerance
    assert any("current teacher" in r for r in v.reasons)
    # both teachers are in the scorecard, on the same inits
    assert {"teacher", "incumbent"} <= set(evaluation.scorecard)
    assert promote_flow(worse, evaluation, teacher.dir) == []
    assert reg.aliases(cfg.name) == aliases
    assert len(reg.versions(cfg.name)) == n_versions


def test_retrain_warm_starts_from_the_registry_teacher(cycle_run):
    """After new data arrives, the retrained teacher starts from the registry's teacher and
    records it as its parent; the comparison with it is in the evaluation and lineage."""
    from flows.stages import evaluate_flow, ingest_flow, promote_flow, train_flow

    _, cfg, rep = cycle_run
    reg = Registry(cfg.promote.registry)
    current = reg.resolve_alias(cfg.name, "teacher")
    more = _with(cfg, **{"data.source": {"days": cfg.data.source.days + 1}})
    assert ingest_flow(more).appended == 24
    teacher = train_flow(more)
    assert teacher.parent == rep["teacher"]["id"]
    assert teacher.parent_version == current
    assert "warm start" in teacher.init
    evaluation = evaluate_flow(more, teacher, MatrixResult(cells=[]))
    v = evaluation.incumbent.verdict
    assert v.mean_ratio is not None and set(v.ratios) == set(more.data.variables)
    promoted = promote_flow(more, evaluation, teacher.dir)
    if v.promote:
        (t,) = [p for p in promoted if p.kind == "teacher"]
        man = reg.manifest(f"{cfg.name}@{t.version}")
        assert man["lineage"]["teacher_parent"] == rep["teacher"]["id"]
        assert man["lineage"]["teacher_parent_version"] == current
        assert reg.resolve_alias(cfg.name, "teacher") == t.version
    else:
        assert promoted == [] and reg.resolve_alias(cfg.name, "teacher") == current


def test_cli_warm_start_reference_is_pulled_and_verified(cycle_run):
    from flows.cli.stages import _resolve_warm_start
    from wxmodels.pipeline.teacher import _parent

    _, cfg, rep = cycle_run
    path = Path(_resolve_warm_start(cfg, f"{cfg.name}@teacher"))
    assert path.parent == Path(cfg.workdir) / "incumbent"
    assert (path / "manifest.json").exists() and (path / "model.safetensors").exists()
    teacher_id, weights = _parent(path)
    assert teacher_id.startswith("t-") and weights == path
    # a directory is passed through as it is
    assert _resolve_warm_start(cfg, str(path)) == str(path)


def test_packed_pull_gives_the_published_onnx(cycle_run):
    """A deployer can fetch the compact pack only: it unpacks to exactly the published
    model.onnx (checked against the manifest), and a tampered pack is refused."""
    tmp, cfg, rep = cycle_run
    reg = Registry(cfg.promote.registry)
    edge = reg.resolve_alias(cfg.name, "edge")
    full = reg.pull(f"{cfg.name}@{edge}", tmp / "full")
    small = reg.pull(f"{cfg.name}@{edge}", tmp / "small", packed=True)
    assert (small / "model.onnx").read_bytes() == (full / "model.onnx").read_bytes()
    assert not (small / "model.safetensors").exists()
    assert (small / "model.wxpack").stat().st_size < (full / "model.onnx").stat().st_size
    # the CLI flag
    r = _wxc(
        "registry",
        "pull",
        f"{cfg.name}@edge",
        str(tmp / "cli-small"),
        "--packed",
        "--registry",
        cfg.promote.registry,
    )
    assert r.returncode == 0 and "from the pack" in r.stdout
    # a pack replaced after publication fails its own checksum first
    f = Path(cfg.promote.registry) / cfg.name / "versions" / edge / "model.wxpack"
    original = f.read_bytes()
    try:
        f.write_bytes(original[:-4] + b"evil")
        with pytest.raises(Exception, match="checksum mismatch"):
            # (a fresh cache: one that holds the verified pack would not download it again)
            reg.pull(f"{cfg.name}@{edge}", tmp / "evil", packed=True, cache=tmp / "fresh")
    finally:
        f.write_bytes(original)


def test_dask_worker_logs_reach_the_flow_run(cycle_run):
    """Logs written in the Dask worker processes, by the task and by the library underneath
    (``PREFECT_LOGGING_EXTRA_LOGGERS=wxmodels``), are stored with the flow run, so the Prefect
    UI shows them."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        LogFilter,
        LogFilterFlowRunId,
    )

    async def logs() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["compress-tiny"]))
            )
            got = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[r.id for r in runs]))
            )
            return [entry.message for entry in got]

    messages = asyncio.run(logs())
    assert any(m.startswith("cell prune (prune):") for m in messages), messages[:20]
    assert any(m.startswith("cell prune: leaves the most sensitive") for m in messages)


# -- the edge runtime, in an environment that has only NumPy and onnxruntime ---------------
def _edge(venv: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "wxc-edge"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd=venv,  # not the checkout: only what was installed can be imported
    )


def _analyses(cfg: CycleConfig, start: str, history: int, out: Path) -> None:
    """What a device receives: the last analyses, as a NumPy archive, variables shuffled."""
    from wxmodels.data.store import Store

    ds = Store(cfg.data.store).open()
    sub = ds.sel(time=slice(None, start)).isel(time=slice(-history, None))
    names = cfg.data.variables[::-1]
    np.savez(
        out,
        fields=np.stack([sub[v].values for v in names], axis=1),
        variables=np.array(names),
        time=sub["time"].values.astype("datetime64[s]").astype(str),
    )


def test_edge_runtime_in_a_bare_environment_gives_the_pipeline_s_forecast(
    cycle_run, edge_venv, tmp_path
):
    """``wxc-edge`` pulls the edge model (verified), reads analyses from a ``.npz`` and
    writes the forecast ``wxc predict`` gives for the same initialisation, in a virtual
    environment where torch, xarray and Prefect cannot even be imported."""
    from wxmodels.predict import forecast

    _, cfg, _ = cycle_run
    py = str(edge_venv / "bin" / "python")
    for absent in ("torch", "xarray", "pandas", "prefect", "dask", "fsspec"):
        r = subprocess.run([py, "-c", f"import {absent}"], capture_output=True, text=True)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, absent
    r = subprocess.run([str(edge_venv / "bin" / "wxc"), "--help"], capture_output=True, text=True)
    assert r.returncode == 2 and "wxcompress[pipeline]" in r.stderr.strip().splitlines()[-1]

    dest = tmp_path / "edge-model"
    r = _edge(edge_venv, "pull", cfg.promote.registry, f"{cfg.name}@edge", str(dest))
    assert r.returncode == 0, r.stderr
    man = json.loads((dest / "manifest.json").read_text())
    assert "verified" in r.stdout and man["version"] in r.stdout
    assert not (dest / "model.safetensors").exists()  # no torch weights on a device
    if (dest / "climatology.nc").exists() or "climatology.nc" in man["files"]:
        assert (dest / "climatology.npz").exists()  # read without a NetCDF library
    info = json.loads(_edge(edge_venv, "info", str(dest)).stdout)
    # the edge runs the scored file; the card says what a device needs
    assert info["file"] == "model.onnx" and not (dest / "model.ort").exists()
    edge = man["deploy"]["edge"]
    assert edge["file"] == "model.onnx" and edge["ort"] and 10 < edge["peak_rss_mb"] < 500
    card = (dest / "card.md").read_text()
    assert "pip install 'wxcompress[edge]'" in card
    b16 = man["metrics"]["latency_ms_batch16"]
    assert f"throughput {16e3 / b16:,.0f} steps/s at batch 16" in card
    start = "2024-01-08T06:00"
    _analyses(cfg, start, info["history"], tmp_path / "an.npz")
    out = tmp_path / "edge.npz"
    r = _edge(
        edge_venv, "predict", str(dest), "--input", str(tmp_path / "an.npz"),
        "--leads", "1,3,6", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    full = Registry(cfg.promote.registry).pull(f"{cfg.name}@{man['version']}", tmp_path / "full")
    want = forecast(full, cfg.data.store, start, [1, 3, 6])
    with np.load(out) as z:
        assert list(z["variables"]) == info["variables"] == cfg.data.variables
        assert list(z["lead_hours"]) == [1.0, 3.0, 6.0]
        assert str(z["init_time"]) == "2024-01-08T06:00:00"
        for i, v in enumerate(cfg.data.variables):
            np.testing.assert_allclose(
                z["forecast"][:, i], want[v].values[0], rtol=1e-6, atol=1e-6, err_msg=v
            )
    # a value missing at a cell the model forecasts is refused in one line, nothing written
    with np.load(tmp_path / "an.npz") as z:
        holes = {k: z[k].copy() for k in z.files}
    i, j = np.argwhere(np.isfinite(holes["fields"][-1, 0]))[0]
    holes["fields"][-1, 0, i, j] = np.nan
    np.savez(tmp_path / "holes.npz", **holes)
    r = _edge(
        edge_venv, "predict", str(dest), "--input", str(tmp_path / "holes.npz"),
        "--leads", "1", "--out", str(tmp_path / "holes-out.npz"),
    )  # fmt: skip
    assert r.returncode == 2 and not (tmp_path / "holes-out.npz").exists()
    assert "missing values at cells the model forecasts" in r.stderr.strip().splitlines()[-1]
    # the batch-1 form in ORT format (minimal builds) gives the same forecast
    r = _edge(
        edge_venv, "pull", cfg.promote.registry, f"{cfg.name}@edge", str(tmp_path / "o"), "--ort"
    )
    assert r.returncode == 0 and not (tmp_path / "o" / "model.onnx").exists(), r.stderr
    assert json.loads(_edge(edge_venv, "info", str(tmp_path / "o")).stdout)["file"] == "model.ort"
    r = _edge(
        edge_venv, "predict", str(tmp_path / "o"), "--input", str(tmp_path / "an.npz"),
        "--leads", "1,3,6", "--out", str(tmp_path / "ort.npz"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with np.load(out) as a, np.load(tmp_path / "ort.npz") as b:
        spread = np.nanstd(a["forecast"], axis=(0, 2, 3), keepdims=True)
        # int8 kernels of the two forms may round a boundary value one step apart
        assert np.nanmax(np.abs(a["forecast"] - b["forecast"]) / spread) < 1e-3
    # asked for NetCDF without a NetCDF library: one line, nothing written
    r = _edge(
        edge_venv, "predict", str(dest), "--input", str(tmp_path / "an.npz"),
        "--out", str(tmp_path / "edge.nc"),
    )  # fmt: skip
    assert r.returncode == 2 and "netCDF4" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "edge.nc").exists()


def test_edge_pull_over_http_refuses_tampering_and_keeps_the_last_good_pull(
    cycle_run, edge_venv, tmp_path
):
    """The registry served over plain HTTP (the edge's stdlib client; aliases found without
    listing): a pull verifies; a file changed after publication, or a manifest rewritten to
    match it, is refused in one line and the earlier pull stays as it was; a destination
    holding someone's files is refused."""
    import shutil
    import socket
    import time

    _, cfg, _ = cycle_run
    served = tmp_path / "served"
    shutil.copytree(cfg.promote.registry, served)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(edge_venv / "bin" / "python"), "-m", "http.server", str(port),
         "--bind", "127.0.0.1", "--directory", str(served)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "no HTTP server"
                time.sleep(0.1)
        dest = tmp_path / "pulled"
        r = _edge(edge_venv, "pull", url, f"{cfg.name}@edge", str(dest))
        assert r.returncode == 0, r.stderr
        version = Registry(str(served)).resolve(f"{cfg.name}@edge")[1]
        assert json.loads((dest / "manifest.json").read_text())["version"] == version
        before = {p.name: p.read_bytes() for p in dest.iterdir()}

        vdir = served / cfg.name / "versions" / version
        onnx_bytes = bytearray((vdir / "model.onnx").read_bytes())
        onnx_bytes[len(onnx_bytes) // 2] ^= 0xFF
        (vdir / "model.onnx").write_bytes(bytes(onnx_bytes))
        r = _edge(edge_venv, "pull", url, f"{cfg.name}@edge", str(dest))
        assert r.returncode == 2 and "checksum mismatch" in r.stderr.strip().splitlines()[-1]
        man = json.loads((vdir / "manifest.json").read_text())
        man["files"]["model.onnx"]["sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
        (vdir / "manifest.json").write_text(json.dumps(man))
        r = _edge(edge_venv, "pull", url, f"{cfg.name}@{version}", str(dest))
        assert r.returncode == 2 and "content id" in r.stderr.strip().splitlines()[-1]
        assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
        assert not [p for p in tmp_path.iterdir() if ".pulling-" in p.name]

        mine = tmp_path / "mine"
        mine.mkdir()
        (mine / "notes.txt").write_text("keep")
        r = _edge(edge_venv, "pull", str(cfg.promote.registry), f"{cfg.name}@edge", str(mine))
        assert r.returncode == 2 and "not an edge pull" in r.stderr
        assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    finally:
        server.terminate()
        server.wait(10)


# -- hindcasts ----------------------------------------------------------------------------
def test_hindcast_killed_then_resumed_on_the_cluster_equals_the_serial_run(
    cycle_run, dask_cluster, tmp_path
):
    """Re-forecasts over the store, block by block into one Zarr: a run killed after writing
    a block's region (before its marker) resumes on the Dask cluster, redoes that block, and
    ends identical to an uninterrupted run in one process; the forecasts are `wxc predict`'s.
    Another plan on the same output, or an output that holds someone's files, is refused."""
    import xarray as xr

    from wxmodels.hindcast import hindcast, plan_hindcast
    from wxmodels.predict import forecast

    _, cfg, _ = cycle_run
    reg = cfg.promote.registry
    model = Registry(reg).pull(f"{cfg.name}@edge", tmp_path / "model")
    span = ("2024-01-03T00:00", "2024-01-08T12:00")
    serial = plan_hindcast(model, cfg.data.store, *span, 6, [1, 3, 6], tmp_path / "a.zarr", block=4)
    assert serial.n_blocks == 6 and len(serial.inits) == 23
    rep = hindcast(serial)
    assert rep["ran_blocks"] == 6

    args = ["hindcast", "--model", f"{cfg.name}@edge", "--start", span[0], "--end", span[1],
            "--every", "6", "--leads", "1,3,6", "--block", "4", "--registry", reg,
            "--out", str(tmp_path / "b.zarr")]  # fmt: skip
    r = _wxc(*args, env={"WXC_CRASH_AT": "hindcast:after-region:2"})
    assert r.returncode == -9, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "b.zarr.hindcast" / "done").iterdir()) == [
        "0.json",
        "1.json",
    ]
    r = _wxc(*args, "--dask-address", dask_cluster)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(2 done before)" in r.stdout
    with xr.open_zarr(tmp_path / "a.zarr") as a, xr.open_zarr(tmp_path / "b.zarr") as b:
        xr.testing.assert_identical(a.load(), b.load())
        assert not np.isnan(a["2m_temperature"].values).any()
        one = forecast(model, cfg.data.store, serial.inits[9], [1, 3, 6])
        for v in cfg.data.variables:
            np.testing.assert_allclose(
                a[v].isel(forecast_reference_time=9).values, one[v].values[0], rtol=1e-5, atol=1e-5
            )

    r = _wxc(*[x if x != "1,3,6" else "1,3" for x in args])
    assert r.returncode == 2 and "planned otherwise" in r.stderr.strip().splitlines()[-1]
    mine = tmp_path / "mine.zarr"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    r = _wxc(*args[:-1], str(mine))
    assert r.returncode == 2 and "is not a hindcast" in r.stderr.strip().splitlines()[-1]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
