"""infra/: the compose stack and the Kubernetes manifests lint clean without an engine, and no
file holds a secret."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists() and not shutil.which(name):
        pytest.fail(f"{name} is not installed (it is a dev dependency: make test installs it)")
    return str(path if path.exists() else shutil.which(name))


def _compose(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "WXC_S3_SECRET")}
    return subprocess.run(
        [_tool("docker-compose"), "-f", str(INFRA / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=120,
    )


def test_compose_file_is_valid_and_takes_secrets_from_the_environment():
    r = _compose({"POSTGRES_PASSWORD": "pg-from-env", "WXC_S3_SECRET": "s3-from-env"})
    assert r.returncode == 0 and "error" not in r.stderr, r.stderr
    stack = yaml.safe_load(r.stdout)
    assert {
        "postgres",
        "prefect-server",
        "s3",
        "dask-scheduler",
        "dask-worker",
        "prefect-worker",
    } <= set(stack["services"])
    assert "postgresql+asyncpg://" in str(stack["services"]["prefect-server"]["environment"])
    assert stack["services"]["dask-worker"]["deploy"]["replicas"] == 2
    r = _compose({"WXC_S3_SECRET": "x"})  # no password given: refused, with the reason
    assert "set POSTGRES_PASSWORD" in r.stderr and not r.stdout.strip()


def test_kubernetes_manifests_validate():
    files = sorted(str(p) for p in (INFRA / "k8s").glob("*.yaml"))
    assert len(files) >= 3
    r = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "-k", "1.30.0", *files],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    kinds = {
        d["kind"] for f in files for d in yaml.safe_load_all(Path(f).read_text()) if d is not None
    }
    assert {"Deployment", "Service", "ConfigMap", "Role", "ServiceAccount"} <= kinds


_SECRETISH = re.compile(
    r"(?i)^\s*-?\s*([A-Z0-9_]*(password|secret)[A-Z0-9_]*)\s*[:=]\s*(.+)$", re.M
)


def test_no_secret_is_written_in_infra_or_configs():
    for f in [*INFRA.rglob("*.yaml"), *INFRA.rglob("*Dockerfile"), *(REPO / "configs").glob("*")]:
        for m in _SECRETISH.finditer(f.read_text()):
            if m.group(1) in ("secretKeyRef", "secretRef"):  # a reference, not a value
                continue
            value = m.group(3).strip().strip("\"'")
            ok = value.startswith("${") or value == ""
            assert ok, f"{f.relative_to(REPO)}: {m.group(1)} has a literal value"


@pytest.mark.parametrize("how", ["file", "inherited"])
def test_worker_dask_config_leaves_glibc_its_dynamic_malloc_thresholds(tmp_path, how):
    """What a worker's nanny puts in the worker's environment, with the pipeline's Dask file
    (the image's /etc/dask, or DASK_CONFIG) or inherited as ``wxc up --dask`` passes it: no
    ``MALLOC_TRIM_THRESHOLD_`` (Dask's own default sets 65536, and the variable
    ``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None`` cannot unset it)."""
    from infra.stack import WORKER_DASK_CONFIG, worker_dask_config

    probe = (
        "import dask; from distributed.nanny import _get_env_variables; "
        "print(_get_env_variables('distributed.nanny.pre-spawn-environ'), "
        "'profile', dask.config.get('distributed.worker.profile.enabled'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env["DASK_ROOT_CONFIG"] = str(tmp_path)  # no machine-wide file
    plain = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert "'MALLOC_TRIM_THRESHOLD_': '65536'" in plain.stdout, plain.stderr
    if how == "file":
        env["DASK_CONFIG"] = str(WORKER_DASK_CONFIG.parent)
    else:
        env["DASK_INTERNAL_INHERIT_CONFIG"] = worker_dask_config()
    ours = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert ours.returncode == 0, ours.stderr
    assert "MALLOC_TRIM_THRESHOLD_" not in ours.stdout and "OMP_NUM_THREADS" in ours.stdout
    assert "profile False" in ours.stdout and "profile True" in plain.stdout
    # the Dockerfile puts the file where Dask reads it
    assert "COPY infra/dask/wxcompress.yaml /etc/dask/" in (INFRA / "docker/Dockerfile").read_text()
