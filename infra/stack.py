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


def status() -> dict[str, Any]:
    """``{url, ui, pid, healthy}`` of the recorded stack (``healthy`` False if none)."""
    f = _state_file()
    st = json.loads(f.read_text()) if f.exists() else {"url": api_url(), "pid": None}
    st["healthy"] = healthy(st["url"])
    st["ui"] = st["url"].removesuffix("/api")
    return st


def up(port: int | None = None, timeout: float = 90.0) -> dict[str, Any]:
    """Start the Prefect server (SQLite) in the background unless one is healthy already."""
    url = api_url(port)
    if healthy(url):
        st = status()
        st.update(url=url, healthy=True, ui=url.removesuffix("/api"))
        return st
    logs = home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    prefect = Path(sys.executable).parent / "prefect"
    port_ = url.rsplit(":", 1)[1].split("/")[0]
    with open(logs / "prefect-server.log", "ab") as log:
        proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", port_],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=prefect_env(),
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(url):
            break
        if proc.poll() is not None:
            raise RuntimeError(
                f"the Prefect server exited (code {proc.returncode}); see "
                f"{logs / 'prefect-server.log'}"
            )
        time.sleep(0.5)
    else:
        proc.terminate()
        raise RuntimeError(
            f"the Prefect server did not become healthy in {timeout:.0f} s; see "
            f"{logs / 'prefect-server.log'}"
        )
    st = {
        "url": url,
        "ui": url.removesuffix("/api"),
        "pid": proc.pid,
        "log": str(logs / "prefect-server.log"),
        "prefect_home": prefect_env()["PREFECT_HOME"],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _state_file().write_text(json.dumps(st, indent=1))
    st["healthy"] = True
    return st


def down(timeout: float = 20.0) -> bool:
    """Stop the recorded stack; return whether something was stopped."""
    f = _state_file()
    if not f.exists():
        return False
    st = json.loads(f.read_text())
    pid = st.get("pid")
    stopped = False
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)
            stopped = True
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                os.killpg(pid, 0)
                time.sleep(0.3)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    f.unlink(missing_ok=True)
    return stopped
