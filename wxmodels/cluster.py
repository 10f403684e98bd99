"""Dask workers as SLURM batch jobs (``runtime.cluster: slurm``), through dask-jobqueue.

:func:`slurm_cluster` starts the scheduler in this process, checks the job with
``sbatch --test-only`` (a bad partition, account or size fails at once, in SLURM's words),
submits ``jobs``, waits until every worker has joined (or fails naming the jobs' states and
logs, never hangs) and cancels the jobs when the block ends. The orchestration layer adds what
its tasks need (warm imports, Prefect's URL); ``wxc hindcast`` uses it as it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from wxmodels.config.runtime import RuntimeConfig
from wxmodels.errors import WxcError

__all__ = ["slurm_cluster", "slurm_kwargs"]

log = logging.getLogger(__name__)

_SQUEUE_EVERY_S = 3.0
"""How often the wait for workers asks SLURM about their jobs (sites ask for restraint)."""
_ENDED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}


def slurm_kwargs(
    rt: RuntimeConfig,
    *,
    exports: Mapping[str, str] | None = None,
    worker_environ: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """``dask_jobqueue.SLURMCluster`` arguments for ``rt.slurm``.

    ``exports``: environment variables set in each job script (sites may not pass the
    submitter's environment on). ``worker_environ``: variables each worker process starts
    with, set by its nanny before it spawns the worker (``None`` unsets Dask's default), on
    top of ``MALLOC_TRIM_THRESHOLD_`` from ``rt.malloc_trim_threshold``.
    """
    import dask.config

    s = rt.slurm
    environ: dict[str, Any] = {"MALLOC_TRIM_THRESHOLD_": rt.malloc_trim_threshold}
    environ.update(worker_environ or {})
    inherit = dask.config.serialize(
        {
            "distributed": {
                "nanny": {"pre-spawn-environ": environ},
                "worker": {"profile": {"enabled": rt.worker_profile}},
            }
        }
    )
    prologue = [f"export {k}={shlex.quote(v)}" for k, v in (exports or {}).items()]
    # the nanny reads it before spawning the worker (Dask's DASK_* variables lower-case the
    # key, which then misses the upper-case MALLOC_TRIM_THRESHOLD_ of its defaults)
    prologue.append(f"export DASK_INTERNAL_INHERIT_CONFIG={inherit}")
    # the job inherits the submitter's environment, where a LocalCluster's nanny in the same
    # process may have left Dask's MALLOC_TRIM_THRESHOLD_ (it updates os.environ before
    # spawning): set or unset it here, so the config alone decides
    mt = environ.get("MALLOC_TRIM_THRESHOLD_")
    prologue.append(
        "unset MALLOC_TRIM_THRESHOLD_" if mt is None else f"export MALLOC_TRIM_THRESHOLD_={int(mt)}"
    )
    kw: dict[str, Any] = {
        "queue": s.partition,
        "account": s.account,
        "walltime": s.walltime,
        "cores": s.cores,
        "memory": s.memory,
        "processes": s.processes,
        "job_name": s.job_name,
        "job_extra_directives": list(s.job_extra_directives),
        "job_script_prologue": [*prologue, *s.job_script_prologue],
        "interface": s.interface,
        "local_directory": s.local_directory,
        "log_directory": str(Path(s.log_directory).expanduser().resolve()),
        # workers' HTTP servers on loopback (no dashboard), the scheduler's where configured
        "worker_extra_args": [
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
            *s.worker_extra_args,
        ],
        "scheduler_options": {"dashboard_address": s.dashboard_address},
    }
    if s.python:
        kw["python"] = s.python
    return kw


def _check_job(script: str) -> None:
    """``sbatch --test-only``: SLURM validates the job without queueing it."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        r = subprocess.run(
            ["sbatch", "--test-only", f.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError as e:
        raise WxcError(
            "runtime.cluster is slurm but sbatch is not on PATH: run on a SLURM login node "
            "(or set runtime.dask_address to a running scheduler)"
        ) from e
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        why = " ".join(line.removeprefix("sbatch: error: ") for line in r.stderr.splitlines())
        raise WxcError(f"SLURM refuses the worker job (runtime.slurm): {why.strip()}")


def _job_states(ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """``{job id: (state, reason)}`` of the jobs SLURM still knows; ``None`` when ``squeue``
    did not answer (a busy controller: ask again later)."""
    if not ids:
        return {}
    r = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if r.returncode != 0:
        # every job forgotten (ended long enough ago) is an error to squeue
        return {} if "Invalid job id" in r.stderr else None
    out = {}
    for line in r.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


def _log_tail(log_dir: str, job_name: str, job_id: str) -> str:
    with contextlib.suppress(OSError):
        text = (Path(log_dir) / f"{job_name}-{job_id}.err").read_text(errors="replace")
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        if lines:
            return lines[-1][-300:]
    return ""


def _wait(cluster: Any, client: Any, rt: RuntimeConfig, log_dir: str) -> None:
    """Until every worker has joined; fails when a job ends first or at the timeout. The
    scheduler is asked twice a second, SLURM (``squeue``) every few seconds."""
    s = rt.slurm
    want = s.n_workers
    start = time.monotonic()
    deadline = start + s.wait_timeout_s
    asked = -_SQUEUE_EVERY_S
    states: dict[str, tuple[str, str]] = {}
    while True:
        have = len(client.nthreads())
        if have >= want:
            return
        now = time.monotonic()
        if now - asked >= _SQUEUE_EVERY_S or now > deadline:
            asked = now
            ids = [j.job_id for j in cluster.workers.values() if getattr(j, "job_id", None)]
            got = _job_states(ids)
            if got is not None:
                states = got
                ended = [i for i in ids if i not in got or got[i][0] in _ENDED]
                if ended:
                    i = ended[0]
                    state = got.get(i, ("ENDED", ""))[0]
                    tail = _log_tail(log_dir, s.job_name, i)
                    raise WxcError(
                        f"SLURM job {i} {state.lower()} before its Dask worker joined ({have} "
                        f"of {want} workers): see {Path(log_dir) / f'{s.job_name}-{i}.err'}"
                        + (f" ({tail})" if tail else "")
                    )
        if now > deadline:
            said = ", ".join(
                f"{i} {st}" + (f" ({why})" if why not in ("", "None") else "")
                for i, (st, why) in states.items()
            )
            raise WxcError(
                f"{have} of {want} SLURM workers joined in {s.wait_timeout_s:.0f} s "
                f"(runtime.slurm.wait_timeout_s); jobs: {said or 'none submitted'}. "
                f"See `squeue --me` and the job logs in {log_dir}"
            )
        time.sleep(0.5)


def _cancel(ids: list[str], timeout: float = 20.0) -> None:
    """``scancel`` the jobs and wait (bounded) until they have ended."""
    if not ids:
        return
    subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _job_states(ids)
        if got is not None and all(st in _ENDED for st, _ in got.values()):
            return
        time.sleep(0.3)


@contextlib.contextmanager
def slurm_cluster(
    rt: RuntimeConfig,
    *,
    exports: Mapping[str, str] | None = None,
    worker_environ: Mapping[str, str | None] | None = None,
) -> Iterator[str]:
    """Yield the address of a scheduler whose ``rt.slurm.jobs`` worker jobs have all joined;
    the jobs are cancelled when the block ends (or when they fail to join). Arguments as
    :func:`slurm_kwargs`."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as e:  # pragma: no cover - in the pipeline extra
        raise WxcError(
            "runtime.cluster: slurm needs dask-jobqueue (pip install 'wxcompress[pipeline]')"
        ) from e
    from distributed import Client

    kw = slurm_kwargs(rt, exports=exports, worker_environ=worker_environ)
    Path(kw["log_directory"]).mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with SLURMCluster(**kw) as cluster:
        _check_job(cluster.job_script())
        cluster.scale(jobs=rt.slurm.jobs)
        try:
            with Client(cluster, timeout="60s") as client:
                _wait(cluster, client, rt, kw["log_directory"])
            ids = ", ".join(str(j.job_id) for j in cluster.workers.values())
            log.info(
                "SLURM cluster %s: %d workers in jobs %s, joined in %.0f s; dashboard %s",
                cluster.scheduler_address,
                rt.slurm.n_workers,
                ids,
                time.perf_counter() - t,
                cluster.dashboard_link,
            )
            yield cluster.scheduler_address
        finally:
            # the jobs end first (SIGTERM: each worker closes its connections), then the
            # scheduler closes, finding no worker stream open
            _cancel([str(j.job_id) for j in cluster.workers.values() if j.job_id])
    log.info("SLURM worker jobs %s cancelled", ids)
