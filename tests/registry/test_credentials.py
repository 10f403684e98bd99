"""Credentials: from the environment or a Prefect Secret block, never from config files,
never in manifests or logs."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from tasks.common import use_credentials
from wxmodels.config.runtime import PromoteConfig
from wxmodels.errors import WxcError
from wxmodels.registry import Registry


@pytest.mark.parametrize(
    "options",
    [
        {"key": "AKIA", "secret": "s"},
        {"client_kwargs": {"endpoint_url": "http://x", "aws_secret_access_key": "s"}},
        {"token": "t"},
    ],
)
def test_config_files_cannot_hold_credentials(options):
    with pytest.raises(ValidationError, match="in the environment or name a Prefect Secret"):
        PromoteConfig(storage_options=options)
    PromoteConfig(storage_options={"client_kwargs": {"endpoint_url": "http://x"}})


def test_secret_block_exports_credentials(prefect_server, monkeypatch):
    from prefect.blocks.system import Secret

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    Secret(value=json.dumps({"aws_access_key_id": "AK1", "aws_secret_access_key": "SK1"})).save(
        "wxc-test-s3", overwrite=True
    )
    use_credentials("wxc-test-s3")
    import os

    assert os.environ["AWS_ACCESS_KEY_ID"] == "AK1"
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "SK1"
    Secret(value="not json").save("wxc-test-bad", overwrite=True)
    with pytest.raises(WxcError, match="must hold a JSON object"):
        use_credentials("wxc-test-bad")
    use_credentials(None)  # nothing configured: nothing happens


@pytest.mark.s3
def test_s3_registry_with_environment_credentials_records_none(
    s3_server, tmp_path, monkeypatch, caplog
):
    so = dict(s3_server.storage_options)
    key, secret = so.pop("key"), so.pop("secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("WXC_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "model.onnx"
    f.write_bytes(b"weights" * 100)
    caplog.set_level(logging.DEBUG, logger="wxmodels")
    reg = Registry(f"s3://{s3_server.bucket()}/registry", so)
    v = reg.publish("demo", {"model.onnx": f}, {"kind": "candidate"})
    reg.set_alias("demo", "edge", v, reason="test")
    out = reg.pull("demo@edge")
    assert (out / "model.onnx").read_bytes() == f.read_bytes()
    recorded = json.dumps(reg.manifest("demo@edge")) + json.dumps(
        [e.to_dict() for e in reg.history("demo", "edge")]
    )
    for s in (key, secret):
        assert s not in recorded
        assert s not in caplog.text
        assert s not in repr(reg)
