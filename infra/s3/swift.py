"""An all-in-one OpenStack Swift with the s3api middleware, on loopback, under one directory.

Swift comes from Debian's packages (``swift-proxy swift-account swift-container swift-object
memcached``; ``.ci/run`` installs them). One ring per service with one device, tempauth with the
user ``test:tester`` / ``testing``; s3fs talks to it with ``key="test:tester"``,
``secret="testing"``, ``endpoint_url=http://127.0.0.1:<port>``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["SwiftS3", "free_port", "swift_available"]

KEY = "test:tester"
SECRET = "testing"
_BINARIES = (
    "swift-proxy-server",
    "swift-account-server",
    "swift-container-server",
    "swift-object-server",
    "swift-ring-builder",
    "memcached",
)


def swift_available() -> bool:
    return all(shutil.which(b) for b in _BINARIES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SERVER = """[DEFAULT]
devices = {devices}
mount_check = false
bind_ip = 127.0.0.1
bind_port = {port}
swift_dir = {swift_dir}
user = {user}
workers = 1
log_level = WARNING
disable_fallocate = true

[pipeline:main]
pipeline = {service}-server

[app:{service}-server]
use = egg:swift#{service}

[{service}-replicator]
[{service}-auditor]
[{service}-updater]
"""

_PROXY = """[DEFAULT]
bind_ip = {host}
bind_port = {port}
swift_dir = {swift_dir}
user = {user}
workers = 1
log_level = WARNING

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = {secret} .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
max_multi_delete_objects = 1000

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{mport}

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
"""


class SwiftS3:
    """Start/stop a Swift + s3api server rooted at ``root`` (``with SwiftS3(dir) as s3:``)."""

    def __init__(
        self,
        root: str | Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        secret: str | None = None,
    ):
        """``host``: the address the S3 endpoint binds (the stores stay on loopback);
        ``secret``: the password of ``test:tester`` (default: ``$WXC_S3_SECRET``, else the
        throwaway ``testing`` of the test suite)."""
        self.root = Path(root)
        self.port = port or free_port()
        self.host = host
        self.secret = secret or os.environ.get("WXC_S3_SECRET") or SECRET
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def storage_options(self) -> dict:
        """s3fs options (credentials included: this is a throwaway local server)."""
        return {"key": KEY, "secret": self.secret, "client_kwargs": {"endpoint_url": self.endpoint}}

    def env(self) -> dict[str, str]:
        """The same, as the environment variables that s3fs/botocore read."""
        return {
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def _configure(self) -> Path:
        etc = self.root / "etc"
        devices = self.root / "srv"
        (devices / "d1").mkdir(parents=True, exist_ok=True)
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_suffix = wxc\nswift_hash_path_prefix = wxc\n\n"
            "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
        )
        user = os.environ.get("USER") or "root"
        ports = {}
        for service in ("account", "container", "object"):
            ports[service] = free_port()
            (etc / f"{service}-server.conf").write_text(
                _SERVER.format(
                    devices=devices, port=ports[service], swift_dir=etc, user=user, service=service
                )
            )
            builder = etc / f"{service}.builder"
            if not builder.exists():
                for args in (
                    ["create", "6", "1", "1"],
                    ["add", f"r1z1-127.0.0.1:{ports[service]}/d1", "1"],
                    ["rebalance"],
                ):
                    subprocess.run(
                        ["swift-ring-builder", str(builder), *args],
                        check=False,
                        capture_output=True,
                        timeout=60,
                    )
            else:  # reuse the ring: point its device at the new port
                subprocess.run(
                    [
                        "swift-ring-builder",
                        str(builder),
                        "set_info",
                        "--ip",
                        "127.0.0.1",
                        f"--change-port={ports[service]}",
                        "--yes",
                    ],
                    check=False,
                    capture_output=True,
                    timeout=60,
                )
                subprocess.run(
                    ["swift-ring-builder", str(builder), "write_ring"],
                    check=False,
                    capture_output=True,
                    timeout=60,
                )
        self.mport = free_port()
        (etc / "proxy-server.conf").write_text(
            _PROXY.format(
                host=self.host,
                port=self.port,
                swift_dir=etc,
                user=user,
                secret=self.secret,
                mport=self.mport,
            )
        )
        self._ports = ports
        return etc

    def start(self, timeout: float = 60.0) -> SwiftS3:
        if not swift_available():
            raise RuntimeError(
                "OpenStack Swift is not installed (apt-get install swift-proxy "
                "swift-account swift-container swift-object memcached)"
            )
        etc = self._configure()
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)

        def spawn(name: str, cmd: list[str]) -> None:
            log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            self.procs[name] = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

        spawn(
            "memcached",
            [
                "memcached",
                "-l",
                "127.0.0.1",
                "-p",
                str(self.mport),
                "-U",
                "0",
                "-u",
                os.environ.get("USER") or "root",
            ],
        )
        for service in ("account", "container", "object"):
            spawn(service, [f"swift-{service}-server", str(etc / f"{service}-server.conf")])
        spawn("proxy", ["swift-proxy-server", str(etc / "proxy-server.conf")])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"swift {name} exited; see {logs / (name + '.log')}")
            if self._healthy():
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"swift did not become healthy in {timeout:.0f} s; logs in {logs}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthcheck", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.procs.clear()

    def restart_proxy(self) -> None:
        """Start the proxy again after :meth:`stop_proxy` (fault tests)."""
        etc = self.root / "etc"
        log = open(self.root / "logs" / "proxy.log", "ab")  # noqa: SIM115
        self.procs["proxy"] = subprocess.Popen(
            ["swift-proxy-server", str(etc / "proxy-server.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not self._healthy() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop_proxy(self) -> None:
        p = self.procs.get("proxy")
        if p and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)

    def __enter__(self) -> SwiftS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
