"""Start, stop and check the local stack: a Prefect server on SQLite under ``$WXC_HOME``.

State lives in ``$WXC_HOME/stack.json``; logs under ``$WXC_HOME/logs/``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["api_url", "down", "healthy", "home", "prefect_env", "status", "up"]

DEFAULT_PORT = 4200


WORKER_DASK_CONFIG = Path(__file__).parent / "dask" / "wxcompress.yaml"


def worker_dask_config() -> str:
    """:data:`WORKER_DASK_CONFIG` serialized for ``DASK_INTERNAL_INHERIT_CONFIG``: the stack's
    workers read it on top of the user's Dask configuration (glibc's dynamic malloc
    thresholds; see the file)."""
    import dask.config
    import yaml

    return dask.config.serialize(yaml.safe_load(WORKER_DASK_CONFIG.read_text()))


def home() -> Path:
    """``$WXC_HOME`` (default ``./.wxc``), absolute."""
    return Path(os.environ.get("WXC_HOME", ".wxc")).resolve()


def api_url(port: int | None = None, host: str = "127.0.0.1") -> str:
    port = port or int(os.environ.get("WXC_PREFECT_PORT", DEFAULT_PORT))
    return f"http://{host}:{port}/api"


def prefect_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Prefect processes of the local stack."""
    env = dict(os.environ if base is None else base)
    env.setdefault("PREFECT_HOME", str(home() / "prefect"))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "wxmodels")
    return env


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether the Prefect API at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as r:
            return r.status == 200 and r.read().strip() == b"true"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _state_file() -> Path:
    return home() / "stack.json"


def _read_state() -> dict[str, Any]:
    f = _state_file()
    return json.loads(f.read_text()) if f.exists() else {}


def _write_state(st: dict[str, Any]) -> None:
    home().mkdir(parents=True, exist_ok=True)
    tmp = _state_file().with_suffix(".partial")
    tmp.write_text(json.dumps(st, indent=1))
    os.replace(tmp, _state_file())


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def status() -> dict[str, Any]:
    """``{url, ui, pid, healthy, services: {name: {pid, log, alive, healthy}}}``."""
    st = _read_state()
    st.setdefault("url", api_url())
    st["healthy"] = healthy(st["url"])
    st["ui"] = st["url"].removesuffix("/api")
    for name, svc in st.get("services", {}).items():
        svc["alive"] = _alive(svc.get("pid"))
        if name == "prefect-server":
            svc["healthy"] = st["healthy"]
        elif "port" in svc:
            svc["healthy"] = svc["alive"] and _port_open("127.0.0.1", svc["port"])
        else:
            svc["healthy"] = svc["alive"]
    return st


def _spawn(name: str, cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    logs = home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return {"pid": proc.pid, "log": str(logs / f"{name}.log"), "cmd": cmd, "_proc": proc}


def _wait(name: str, svc: dict[str, Any], ok, timeout: float) -> None:
    proc: subprocess.Popen = svc.pop("_proc")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited (code {proc.returncode}); see {svc['log']}")
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"{name} did not become healthy in {timeout:.0f} s; see {svc['log']}")


def up(
    port: int | None = None,
    timeout: float = 90.0,
    *,
    deployments: str | None = "configs/deployments.yaml",
    s3: bool = False,
    dask_workers: int = 0,
) -> dict[str, Any]:
    """Start what is not running yet: the Prefect server (SQLite), the deployments' runner
    (``python -m deployments``, when ``deployments`` names a file), and optionally the S3
    server (``s3``) and a Dask scheduler with ``dask_workers`` workers. Each is health-checked;
    logs go to ``$WXC_HOME/logs/<service>.log``."""
    url = api_url(port)
    st = status()
    services: dict[str, Any] = {k: v for k, v in st.get("services", {}).items() if v.get("alive")}
    env = prefect_env()
    env["PREFECT_API_URL"] = url
    if not healthy(url):
        port_ = url.rsplit(":", 1)[1].split("/")[0]
        prefect = Path(sys.executable).parent / "prefect"
        svc = _spawn(
            "prefect-server",
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", port_],
            env,
        )
        _wait("the Prefect server", svc, lambda: healthy(url), timeout)
        services["prefect-server"] = svc
    if s3 and "s3" not in services:
        from infra.s3.swift import free_port

        s3_port = int(os.environ.get("WXC_S3_PORT", 0)) or free_port()
        svc = _spawn(
            "s3",
            [
                sys.executable,
                "-m",
                "infra.s3",
                "--root",
                str(home() / "s3"),
                "--port",
                str(s3_port),
            ],
            env,
        )
        svc["port"] = s3_port
        _wait("the S3 server", svc, lambda: _port_open("127.0.0.1", s3_port), timeout)
        services["s3"] = svc
    if dask_workers and "dask-scheduler" not in services:
        from infra.s3.swift import free_port

        dport = free_port()
        dask = str(Path(sys.executable).parent / "dask")
        svc = _spawn(
            "dask-scheduler",
            [
                dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(dport),
                "--dashboard-address",
                ":0",
            ],
            env,
        )
        svc["port"] = dport
        _wait("the Dask scheduler", svc, lambda: _port_open("127.0.0.1", dport), timeout)
        services["dask-scheduler"] = svc
        wenv = {**env, "DASK_INTERNAL_INHERIT_CONFIG": worker_dask_config()}
        for k in range(dask_workers):
            w = _spawn(
                f"dask-worker-{k}",
                [
                    dask,
                    "worker",
                    f"tcp://127.0.0.1:{dport}",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                ],
                wenv,
            )
            w.pop("_proc")
            services[f"dask-worker-{k}"] = w
    if "dask-scheduler" in services:
        env["WXC_DASK_ADDRESS"] = f"tcp://127.0.0.1:{services['dask-scheduler']['port']}"
    if deployments and "runner" not in services:
        svc = _spawn("runner", [sys.executable, "-m", "deployments", "--config", deployments], env)
        _wait("the deployments' runner", svc, lambda: _deployments_listed(url), timeout)
        services["runner"] = svc
    for svc in services.values():
        svc.pop("_proc", None)
    state = {
        "url": url,
        "ui": url.removesuffix("/api"),
        "pid": services.get("prefect-server", {}).get("pid", st.get("pid")),
        "prefect_home": env["PREFECT_HOME"],
        "logs": str(home() / "logs"),
        "services": services,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_state(state)
    return status()


def _deployments_listed(url: str) -> bool:
    """Whether the runner has registered the deployments (they appear in the API)."""
    import urllib.request

    req = urllib.request.Request(
        f"{url}/deployments/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            names = {d["name"] for d in json.loads(r.read())}
    except (urllib.error.URLError, OSError, ValueError):
        return False
    from wxmodels.config.deployments import DEPLOYMENT_NAMES

    return {n.split("/")[1] for n in DEPLOYMENT_NAMES.values()} <= names


def down(timeout: float = 20.0) -> bool:
    """Stop every service of the recorded stack (runner first, server last); return whether
    something was stopped."""
    st = _read_state()
    if not st:
        return False
    services = st.get("services") or (
        {"prefect-server": {"pid": st["pid"]}} if st.get("pid") else {}
    )
    order = sorted(services, key=lambda n: (n == "prefect-server", n != "runner", n))
    stopped = False
    for name in order:
        pid = services[name].get("pid")
        if not _alive(pid):
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
            stopped = True
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.3)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _state_file().unlink(missing_ok=True)
    return stopped
