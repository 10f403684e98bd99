"""A real single-node SLURM on loopback, under one directory: slurmctld and slurmd from Debian's
packages (``slurmctld slurmd slurm-client munge``; ``make system-deps`` installs them as root),
authenticated by munge, for the tests and for trying ``runtime.cluster: slurm`` on one machine.

The node is this machine as ``slurmd -C`` sees it (CPUs, 95 % of its memory), named
``localhost`` on 127.0.0.1, in one partition (``debug`` by default). SLURM's commands find the
cluster through ``SLURM_CONF`` (:meth:`LoopbackSlurm.env`). The daemons fork and write PID
files under the directory, so a later process (``python -m infra.slurm down``) stops them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["LoopbackSlurm", "slurm_unavailable"]

_BINARIES = ("slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "scancel", "munged", "runuser")
_MUNGE_RUN = Path("/run/munge")
_MUNGE_SOCKET = _MUNGE_RUN / "munge.socket.2"

_CONF = """\
ClusterName=wxc
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={mem_per_cpu}
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} Boards={boards} SocketsPerBoard={sockets} \
CoresPerSocket={cores} ThreadsPerCore={threads} RealMemory={memory} State=UNKNOWN
PartitionName={partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def slurm_unavailable() -> str | None:
    """Why a loopback SLURM cannot run here (one line), or ``None`` when it can."""
    missing = [b for b in _BINARIES if not shutil.which(b)]
    if missing:
        how = (
            "`make system-deps` installs them"
            if os.geteuid() == 0 and shutil.which("apt-get")
            else "they install with apt-get as root (slurmctld slurmd slurm-client munge)"
        )
        return f"SLURM is not installed (missing {', '.join(missing)}); {how}"
    if os.geteuid() != 0:
        return "the loopback SLURM runs its daemons as root (SlurmUser=root); this is not root"
    if not Path("/etc/munge/munge.key").exists():
        return "munge has no key (/etc/munge/munge.key); reinstall the munge package"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> dict[str, int]:
    """What ``slurmd -C`` detects; ``RealMemory`` at 95 % (more than detected drains the node)."""
    text = subprocess.run(
        ["slurmd", "-C"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    got = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text.splitlines()[0])}
    return {
        "cpus": got["CPUs"],
        "boards": got.get("Boards", 1),
        "sockets": got.get("SocketsPerBoard", 1),
        "cores": got.get("CoresPerSocket", got["CPUs"]),
        "threads": got.get("ThreadsPerCore", 1),
        "memory": int(got["RealMemory"] * 0.95),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LoopbackSlurm:
    """Start/stop slurmctld + slurmd (+ munged when none runs) rooted at ``root``
    (``with LoopbackSlurm(dir) as slurm:``)."""

    def __init__(self, root: str | Path, *, partition: str = "debug") -> None:
        self.root = Path(root).resolve()
        self.partition = partition
        self.conf = self.root / "etc" / "slurm.conf"

    def env(self) -> dict[str, str]:
        """What SLURM's commands (and dask-jobqueue, which calls them) need in the environment."""
        return {"SLURM_CONF": str(self.conf)}

    def _run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env()},
            check=False,
        )

    # -- munge -------------------------------------------------------------------------
    def _munge_ok(self) -> bool:
        if not _MUNGE_SOCKET.exists():
            return False
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=False)
        if cred.returncode != 0:
            return False
        back = subprocess.run(
            ["unmunge"], input=cred.stdout, capture_output=True, timeout=10, check=False
        )
        return back.returncode == 0

    def _start_munge(self, deadline: float) -> None:
        """Reuse a running munged; else start one as user ``munge`` and remember its PID, so
        that :meth:`stop` ends it (and only it)."""
        if self._munge_ok():
            return
        _MUNGE_RUN.mkdir(parents=True, exist_ok=True)
        shutil.chown(_MUNGE_RUN, "munge", "munge")
        _MUNGE_RUN.chmod(0o755)
        r = subprocess.run(
            ["runuser", "-u", "munge", "--", "munged"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"munged did not start: {r.stderr.strip()[-400:]}")
        while not self._munge_ok():
            if time.monotonic() > deadline:
                raise RuntimeError("munged started but does not answer on " + str(_MUNGE_SOCKET))
            time.sleep(0.2)
        pid = (_MUNGE_RUN / "munged.pid").read_text().strip()
        (self.root / "run" / "munged.pid").write_text(pid + "\n")

    # -- slurm -------------------------------------------------------------------------
    def _configure(self) -> None:
        for d in ("etc", "state", "spool", "log", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        hw = _node_hardware()
        self.conf.write_text(
            _CONF.format(
                root=self.root,
                ctld_port=_free_port(),
                slurmd_port=_free_port(),
                mem_per_cpu=max(256, hw["memory"] // hw["cpus"]),
                partition=self.partition,
                **hw,
            )
        )

    def node_state(self) -> str | None:
        """The node's state as ``sinfo`` reports it (``idle``, ``alloc``, ``down*``...)."""
        r = self._run("sinfo", "-h", "-N", "-o", "%t", timeout=15)
        return r.stdout.strip() or None if r.returncode == 0 else None

    def pids(self) -> dict[str, int]:
        """The daemons of this directory that are running, by name."""
        out = {}
        for name in ("slurmctld", "slurmd", "munged"):
            f = self.root / "run" / f"{name}.pid"
            with contextlib.suppress(OSError, ValueError):
                pid = int(f.read_text().strip())
                if _pid_alive(pid):
                    out[name] = pid
        return out

    def start(self, timeout: float = 60.0) -> LoopbackSlurm:
        """Start the daemons and return once ``sinfo`` shows the node idle."""
        why = slurm_unavailable()
        if why:
            raise RuntimeError(why)
        if {"slurmctld", "slurmd"} <= set(self.pids()):
            return self
        deadline = time.monotonic() + timeout
        self._configure()
        self._start_munge(deadline)
        logs = self.root / "log"
        for cmd in (["slurmctld", "-f", str(self.conf)], ["slurmd", "-f", str(self.conf)]):
            if cmd[0] == "slurmd":
                cmd += ["-N", "localhost"]
            r = self._run(*cmd)
            if r.returncode != 0:
                self.stop()
                raise RuntimeError(
                    f"{cmd[0]} did not start ({r.stderr.strip()[-300:]}); see {logs}/{cmd[0]}.log"
                )
        state = None
        while time.monotonic() < deadline:
            state = self.node_state()
            if state == "idle":
                return self
            time.sleep(0.3)
        tail = self._log_tail("slurmd") + self._log_tail("slurmctld")
        self.stop()
        raise RuntimeError(
            f"the SLURM node did not come up idle in {timeout:.0f} s (sinfo: {state}); "
            f"logs in {logs}: {tail}"
        )

    def _log_tail(self, name: str, lines: int = 3) -> str:
        with contextlib.suppress(OSError):
            text = (self.root / "log" / f"{name}.log").read_text(errors="replace")
            return " | ".join(text.strip().splitlines()[-lines:])
        return ""

    def jobs(self) -> list[str]:
        """IDs of the jobs in the queue (any state)."""
        r = self._run("squeue", "-h", "-o", "%i", timeout=15)
        return r.stdout.split() if r.returncode == 0 else []

    def stop(self, timeout: float = 20.0) -> None:
        """Cancel every job, wait for the queue to empty, then end the daemons by PID (munged
        only if this directory started it)."""
        pids = self.pids()
        deadline = time.monotonic() + timeout
        if "slurmctld" in pids and self.jobs():
            self._run("scancel", "--full", *self.jobs())
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            if name in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pids[name], signal.SIGTERM)
        for name, pid in pids.items():
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                (self.root / "run" / f"{name}.pid").unlink()

    def status(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "conf": str(self.conf),
            "daemons": self.pids(),
            "node": self.node_state() if "slurmctld" in self.pids() else None,
            "jobs": self.jobs() if "slurmctld" in self.pids() else [],
        }

    def __enter__(self) -> LoopbackSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
