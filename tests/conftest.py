"""Shared fixtures: real data location, the Prefect test harness, tiny configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("WXC_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$WXC_DATA_DIR``); the test is skipped when it is absent."""
    d = shared_data_dir()
    if not (d / "wfde5_uk_2017-01").is_dir():
        pytest.skip(f"real data not found at {d} (set WXC_DATA_DIR to the shared data folder)")
    return d


@pytest.fixture(scope="session", autouse=True)
def _nothing_written_into_the_checkout():
    """Nothing the suite runs may write into the working tree outside ``.wxc/`` (onnxruntime's
    shape inference, for one, drops ``sym_shape_infer_temp.onnx`` into the current directory)."""
    before = {p.name for p in REPO.iterdir()}
    yield
    new = sorted({p.name for p in REPO.iterdir()} - before - {".wxc", ".pytest_cache"})
    assert not new, f"the test session wrote into the checkout: {new}"


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory):
    """Registry pulls go through a cache of the session's own, not the user's."""
    old = os.environ.get("WXC_CACHE")
    os.environ["WXC_CACHE"] = str(tmp_path_factory.mktemp("wxc-cache"))
    yield
    if old is None:
        os.environ.pop("WXC_CACHE", None)
    else:
        os.environ["WXC_CACHE"] = old


@pytest.fixture
def wxc_main(capsys):
    """Run ``wxc ARGS`` in this process (for commands that fail before any work: no server, no
    imports of the heavy stack); returns ``(exit code, stderr)``. The environment is restored."""
    from flows.cli import main

    def run(*args: str) -> tuple[int, str]:
        saved = dict(os.environ)
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return code, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server (SQLite) for the session; its URL is exported to the
    environment too, so that Dask worker processes report to it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    old = os.environ.get("PREFECT_API_URL")
    with prefect_test_harness(server_startup_timeout=60):
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        yield PREFECT_API_URL.value()
    if old is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = old


@pytest.fixture(scope="session")
def dask_cluster(prefect_server):
    """A real Dask cluster (a LocalCluster of 2 worker processes) for the session, its workers
    warmed once (``flows.runners.warm``) and exported as ``WXC_DASK_ADDRESS``, which the flows
    join by address, as they would a site's cluster, in this process and in the ``wxc``
    commands the tests start. Started after the Prefect server, whose URL the workers inherit."""
    from distributed import LocalCluster

    from flows.runners import _local_kwargs, warm
    from wxmodels.config.runtime import RuntimeConfig

    old = os.environ.get("WXC_DASK_ADDRESS")
    with LocalCluster(**_local_kwargs(RuntimeConfig(n_workers=2))) as cluster:
        warm(cluster.scheduler_address)
        os.environ["WXC_DASK_ADDRESS"] = cluster.scheduler_address
        yield cluster.scheduler_address
    if old is None:
        os.environ.pop("WXC_DASK_ADDRESS", None)
    else:
        os.environ["WXC_DASK_ADDRESS"] = old


@pytest.fixture(scope="session")
def edge_venv(tmp_path_factory) -> Path:
    """A virtual environment with nothing but ``pip install 'wxcompress[edge]'``: NumPy,
    onnxruntime (at this environment's versions) and the project, installed by uv (from its
    cache or the package index). Skipped, saying why, where that cannot be installed."""
    import importlib.metadata as md
    import shutil

    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    root = tmp_path_factory.mktemp("edge")
    venv = root / "venv"
    src = root / "src"  # a copy: a build writes build/ and *.egg-info beside the sources
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, src / f)
    for d in ("wxmodels", "tasks", "flows", "deployments", "infra"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    py = venv / "bin" / "python"
    links = os.environ.get("PIP_FIND_LINKS") or (
        "/opt/wheels" if Path("/opt/wheels").is_dir() else ""
    )
    flags = ["--find-links", links] if links else []
    pins = [f"numpy=={md.version('numpy')}", f"onnxruntime=={md.version('onnxruntime')}"]
    steps = [
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        [uv, "pip", "install", "-q", "--python", str(py), *flags, *pins],
        [uv, "pip", "install", "-q", "--python", str(py), *flags, f"{src}[edge]"],
    ]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.skip(
                f"cannot build the edge environment ({' '.join(cmd[:3])}): {r.stderr[-500:]}"
            )
    return venv


class S3Server:
    """A running S3-compatible server and a way to get a fresh bucket on it."""

    def __init__(self, kind: str, storage_options: dict, stop, swift=None):
        self.kind = kind
        self.storage_options = storage_options
        self._stop = stop
        self._n = 0
        self.swift = swift
        """The :class:`~infra.s3.SwiftS3` (fault tests stop and restart its proxy); None on moto."""

    def bucket(self) -> str:
        import s3fs

        self._n += 1
        name = f"wxc-test-{os.getpid()}-{self._n}"
        fs = s3fs.S3FileSystem(**self.storage_options)
        fs.mkdir(name)
        return name


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server for the session: OpenStack Swift + s3api when installed
    (``make test`` installs it from Debian), else moto's server as a named fallback."""
    from infra.s3 import SwiftS3, swift_available

    if swift_available():
        swift = SwiftS3(tmp_path_factory.mktemp("swift")).start()
        yield S3Server("swift", swift.storage_options(), swift.stop, swift)
        swift.stop()
        return
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Server(
        "moto (fallback: Swift is not installed)",
        {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": f"http://{host}:{port}"}},
        server.stop,
    )
    server.stop()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store_url(request, tmp_path):
    """A store location: a local path, and (marked ``s3``) a fresh bucket on the S3 server.
    Yields ``(url, storage_options)``."""
    if request.param == "local":
        return str(tmp_path / "store.zarr"), {}
    s3 = request.getfixturevalue("s3_server")
    return f"s3://{s3.bucket()}/store.zarr", dict(s3.storage_options)
