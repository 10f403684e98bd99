"""Dask workers as SLURM jobs (``runtime.cluster: slurm``): what an HPC centre asks of a job.

The flow run (and the Dask scheduler, which lives in it) stays where it is started, usually a
login node or a job of its own; each worker is a batch job that connects back to it. Every path
the workers read or write (the store, the work directory, the registry, the model cache
``$WXC_CACHE``, the Python environment, :attr:`SlurmConfig.log_directory`) must be on a
filesystem that the compute nodes mount at the same path, and the Prefect API
(``PREFECT_API_URL``) must be reachable from them.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from wxmodels.config.base import Strict

__all__ = ["SlurmConfig"]

_WALLTIME = re.compile(r"^(\d+-\d{1,2}(:\d{2}){0,2}|\d+(:\d{2}){0,2})$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|[kKMGTP]i?B)$")


class SlurmConfig(Strict):
    """One batch job per :attr:`jobs`, each running :attr:`processes` Dask workers.

    A worker per node: ``processes: 1`` and ``cores`` = the node's cores (one worker, that
    many threads). A worker per core: ``processes`` = ``cores`` (single-threaded workers, the
    matrix's usual shape: each cell uses ``runtime.torch_threads`` threads)."""

    partition: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9_.,-]+$")
    """SLURM partition (``#SBATCH -p``; dask-jobqueue's ``queue``); ``None``: the site's
    default partition."""
    account: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    """Project account charged for the jobs (``#SBATCH -A``); ``None``: the user's default."""
    walltime: str = "01:00:00"
    """Time limit of each worker job, in SLURM's formats (``MM``, ``HH:MM:SS``,
    ``D-HH:MM``...). Workers end with their job: make it cover the whole matrix."""
    cores: int = Field(1, ge=1, le=4096)
    """Cores per job (``--cpus-per-task``), shared by its :attr:`processes` workers."""
    memory: str = "4GiB"
    """Memory per job (``--mem``), shared by its workers (``4GiB``, ``500MB``...)."""
    processes: int = Field(1, ge=1, le=4096)
    """Dask workers per job; each gets ``cores / processes`` threads."""
    jobs: int = Field(2, ge=1, le=4096)
    """Worker jobs submitted; the run waits for all ``jobs * processes`` workers."""
    job_name: str = Field("wxc-worker", pattern=r"^[A-Za-z0-9_.-]+$")
    """Job name in ``squeue`` and in the log files' names."""
    job_extra_directives: list[str] = []
    """More ``#SBATCH`` options, one per entry, without the ``#SBATCH`` itself
    (``--exclusive``, ``--constraint=cpu``, ``--qos=normal``, ``--gres=gpu:1``)."""
    job_script_prologue: list[str] = []
    """Shell lines run in each job before the worker starts (``module load python/3.11``,
    ``source /shared/venvs/wxc/bin/activate``)."""
    interface: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Network interface the scheduler and workers listen on (``ib0``, ``eth0``, ``lo`` for
    one machine); ``None``: the host name's address."""
    local_directory: str | None = None
    """Node-local scratch for workers' spill files (``$TMPDIR``, ``/local/scratch``; expanded
    on the node); ``None``: Dask's default (the system's temp directory)."""
    log_directory: str = ".wxc/slurm-logs"
    """Where the jobs' stdout/stderr go (``<job_name>-<job id>.err``); relative paths are
    taken from the directory the run starts in; ``${VAR:-default}`` and ``~`` expand here.
    On a shared filesystem."""
    python: str | None = None
    """Python executable on the compute nodes; ``None``: the one running the flow (the same
    environment, on the shared filesystem)."""
    worker_extra_args: list[str] = []
    """More ``dask worker`` options (``--lifetime 55m --lifetime-stagger 2m``)."""
    dashboard_address: str = "127.0.0.1:0"
    """Where the scheduler's dashboard listens (loopback by default: reach it by SSH tunnel)."""
    wait_timeout_s: float = Field(600.0, gt=0, le=7 * 24 * 3600)
    """How long the run waits for every worker to join before failing (queued jobs included);
    the error names the jobs' states and their log files."""

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, v: str) -> str:
        if not _WALLTIME.match(v.strip()):
            raise ValueError(
                f"walltime {v!r} is not a SLURM time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                "D-HH:MM:SS)"
            )
        return v.strip()

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if not _MEMORY.match(v.strip()):
            raise ValueError(f"memory {v!r}: give a size with its unit (4GiB, 500MB, 64GB)")
        return v.strip()

    @field_validator("job_extra_directives")
    @classmethod
    def _directives(cls, v: list[str]) -> list[str]:
        for d in v:
            if "\n" in d or not d.strip().startswith("-"):
                raise ValueError(
                    f"job_extra_directives entry {d!r}: one sbatch option per entry, starting "
                    "with '-' and without '#SBATCH' (--exclusive, --qos=normal)"
                )
        return [d.strip() for d in v]

    @field_validator("job_script_prologue")
    @classmethod
    def _prologue(cls, v: list[str]) -> list[str]:
        for line in v:
            if "\n" in line:
                raise ValueError(f"job_script_prologue entry {line!r}: one shell line per entry")
        return v

    @field_validator("log_directory", "python")
    @classmethod
    def _expand(cls, v: str | None) -> str | None:
        from wxmodels.config.data import expand

        return None if v is None else expand(v)

    @model_validator(mode="after")
    def _shape(self) -> SlurmConfig:
        if self.processes > self.cores:
            raise ValueError(
                f"processes ({self.processes}) exceeds cores ({self.cores}): each worker needs "
                "at least one core of its job"
            )
        return self

    @property
    def n_workers(self) -> int:
        """Workers the run waits for."""
        return self.jobs * self.processes
