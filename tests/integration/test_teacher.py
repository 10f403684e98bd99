"""The teacher as the train stage builds it: an ensemble of members, least-squares start,
ONNX parity, and warm start from a teacher directory (library calls, no Prefect)."""

from __future__ import annotations

import pytest

from tests.factories import tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.data.ingest import ingest
from wxmodels.nets.forecaster import load_forecaster
from wxmodels.pipeline.teacher import train_teacher

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    raw = tiny_cycle_config(tmp)
    raw["train"].update({"epochs": 2, "rollout_epochs": 1, "samples_per_epoch": 48})
    cfg = CycleConfig.model_validate(raw)
    ingest(cfg.data)
    return tmp, raw


def test_ensemble_teacher(ingested):
    tmp, raw = ingested
    raw = {**raw, "net": {**raw["net"], "members": 2}}
    cfg = CycleConfig.model_validate(raw)
    rec = train_teacher(cfg)
    assert rec.net["members"] == 2 and len(rec.members_fit) == 2
    assert rec.linear_init["mse_linear"] < rec.linear_init["mse_base"]
    assert rec.onnx_parity < 1e-3
    # each member starts from the least-squares linear model: none ends worse than it
    for m in rec.members_fit:
        assert m["best_val"] <= m["initial_val"]
    model = load_forecaster(f"{rec.dir}/torch")
    assert model.members == 2 and len(model.core.members) == 2


def test_warm_start_from_a_teacher_directory(ingested):
    tmp, raw = ingested
    cfg = CycleConfig.model_validate(raw)
    first = train_teacher(cfg)
    again = train_teacher(cfg, warm_start=first.dir)
    assert again.parent == first.id and again.id != first.id
    assert again.linear_init is None  # the weights came from the parent
    assert "warm start" in again.init
    # the warm start begins where the parent ended: its initial validation loss is the
    # parent's best
    assert again.fit["initial_val"] == pytest.approx(first.fit["best_val"], rel=1e-4)


def test_training_is_reproducible_and_seeded(ingested):
    from safetensors.numpy import load_file

    tmp, raw = ingested
    cfg = CycleConfig.model_validate(raw)
    a = train_teacher(cfg, reuse=False)
    b = train_teacher(cfg, reuse=False)
    wa = load_file(f"{a.dir}/torch/model.safetensors")
    wb = load_file(f"{b.dir}/torch/model.safetensors")
    assert all((wa[k] == wb[k]).all() for k in wa)
    other = CycleConfig.model_validate({**raw, "train": {**raw["train"], "seed": 1}})
    c = train_teacher(other)
    assert c.seed != a.seed
    wc = load_file(f"{c.dir}/torch/model.safetensors")
    assert any(not (wa[k] == wc[k]).all() for k in wa if k.startswith("core."))
