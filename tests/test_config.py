"""Configuration: YAML files, overrides, and one clear line for every mistake."""

import re
from pathlib import Path

import pytest
import yaml

from wxmodels.config import load_config
from wxmodels.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["demo.yaml", "wfde5-uk.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.compress.cells
    assert {s.method for c in cfg.compress.cells for s in c.steps} >= {
        "prune",
        "int8",
        "distill",
        "lowrank",
    }


def test_override_changes_value():
    cfg = load_config(
        REPO / "configs/demo.yaml", ["train.epochs=3", "compress.cells.0.steps.0.amount=0.7"]
    )
    assert cfg.train.epochs == 3
    assert cfg.compress.cells[0].steps[0].amount == 0.7


def _write(tmp_path, raw):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_typo_is_one_line_with_suggestion(tmp_path):
    raw = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    raw["train"]["epoch"] = 3
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, raw))
    msg = str(e.value)
    assert "train.epoch" in msg and "did you mean 'epochs'" in msg
    assert "\n" not in msg


def test_onnx_step_must_come_last(tmp_path):
    raw = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    raw["compress"]["cells"][0]["steps"] = [{"method": "int8"}, {"method": "prune"}]
    with pytest.raises(ConfigError, match="comes last"):
        load_config(_write(tmp_path, raw))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("data.variables=[no_such_var]", "unknown canonical variables"),
        ("name=../../etc", "name"),
        ("evaluate.leads_h=[6, 1]", "ascending"),
        ("compress.cells.0.steps.0.amount=1.5", "amount"),
    ],
)
def test_invalid_values(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(REPO / "configs/demo.yaml", [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_data_dir_is_expanded(monkeypatch):
    monkeypatch.setenv("WXC_DATA_DIR", "/some/where")
    cfg = load_config(REPO / "configs/wfde5-uk.yaml")
    assert cfg.data.source.expanded()[0].startswith("/some/where/wfde5_uk_2017-01/")
    monkeypatch.delenv("WXC_DATA_DIR")
    cfg = load_config(REPO / "configs/wfde5-uk.yaml")
    assert cfg.data.source.expanded()[0].startswith("../shared/data/")


def test_compression_grid_expands_to_named_cells():
    from wxmodels.config.compress import CompressConfig

    c = CompressConfig.model_validate(
        {
            "cells": [{"name": "int8", "steps": [{"method": "int8"}]}],
            "grid": [
                {
                    "name": "distill-int8",
                    "steps": [{"method": "distill", "epochs": 3}, {"method": "int8"}],
                    "sweep": {"steps.0.width": [8, 12], "steps.0.depth": [1, 2]},
                }
            ],
        }
    )
    names = [x.name for x in c.cells]
    assert names == [
        "int8",
        "distill-int8-width-8-depth-1",
        "distill-int8-width-8-depth-2",
        "distill-int8-width-12-depth-1",
        "distill-int8-width-12-depth-2",
    ]
    last = c.cells[-1].steps[0]
    assert (last.width, last.depth, last.epochs) == (12, 2, 3)
    # the expanded config is plain cells: it round-trips without the grid
    assert CompressConfig.model_validate(c.model_dump()).cells == c.cells


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"amount": [0.5]}, "steps.<index>.<field>"),
        ({"steps.3.amount": [0.5]}, "names step 3 of 1"),
        ({"steps.0.amount": []}, "non-empty list"),
        ({"steps.0.amount": [1.5]}, "amount"),
    ],
)
def test_compression_grid_errors_are_clear(sweep, message):
    from pydantic import ValidationError

    from wxmodels.config.compress import CompressConfig

    with pytest.raises(ValidationError, match=re.escape(message)):
        CompressConfig.model_validate(
            {"grid": [{"name": "p", "steps": [{"method": "prune"}], "sweep": sweep}]}
        )
