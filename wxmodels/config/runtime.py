"""Where work runs and where models go."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from wxmodels.config.base import Strict
from wxmodels.config.slurm import SlurmConfig

__all__ = ["PromoteConfig", "RuntimeConfig", "SlurmConfig"]

_SECRET_KEYS = {
    "key",
    "secret",
    "token",
    "password",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "session_token",
}


def _credential_keys(options: Any) -> set[str]:
    """Keys that carry credentials anywhere in nested fsspec options."""
    if isinstance(options, dict):
        out = {k for k in options if str(k).lower() in _SECRET_KEYS}
        for v in options.values():
            out |= _credential_keys(v)
        return out
    return set()


class RuntimeConfig(Strict):
    """Compute for the compression matrix and evaluation."""

    dask_address: str | None = None
    """Address of an existing Dask scheduler (``tcp://host:8786``); ``None`` starts the
    cluster :attr:`cluster` names. Wins over :attr:`cluster` when set."""
    cluster: Literal["local", "slurm"] = "local"
    """The cluster a run starts for its matrix and validation (and ``wxc hindcast``):
    ``local``, a LocalCluster of :attr:`n_workers` processes on this machine; ``slurm``,
    workers as batch jobs, shaped by :attr:`slurm`."""
    slurm: SlurmConfig = SlurmConfig()
    """The SLURM jobs of ``cluster: slurm`` (partition, account, walltime, cores...)."""
    n_workers: int = Field(2, ge=1, le=4096)
    """Workers of the LocalCluster (ignored with ``dask_address`` and ``cluster: slurm``)."""
    threads_per_worker: int = Field(1, ge=1, le=1024)
    torch_threads: int = Field(1, ge=1, le=1024)
    """torch / onnxruntime threads inside each task."""
    malloc_trim_threshold: int | None = None
    """glibc ``MALLOC_TRIM_THRESHOLD_`` of the LocalCluster's workers; ``None`` leaves glibc's
    dynamic default. Dask sets 64 KiB to hand memory back to the OS quickly, which also pins
    glibc's mmap threshold, so every large torch buffer becomes an mmap/munmap pair with fresh
    page faults: compression cells ran 1.8-2x slower in workers than in a plain process."""
    worker_profile: bool = False
    """Dask's statistical profiler in the workers of the clusters a run starts (the
    dashboard's Profile page). It samples each running task's stack every 10 ms: a
    compression cell took ~3.5 % longer with it on."""


class PromoteConfig(Strict):
    """The registry and what is promoted to it."""

    registry: str = ".wxc/registry"
    """Registry URL: a local directory or any fsspec URL (``s3://bucket/prefix``)."""
    storage_options: dict[str, Any] = {}
    """fsspec options (endpoint_url, ...). Credentials come from the environment or from
    ``credentials_block``, never from a config file (refused here)."""
    notify_block: str | None = Field(None, pattern=r"^[a-z0-9-]+/[A-Za-z0-9_.-]+$")
    """A Prefect notification block, ``<block type>/<name>`` (``slack-webhook/ops``,
    ``custom-webhook/pager``, ...), told when the gates reject every candidate (the event
    ``wxc.gates.rejected-all`` is emitted in any case)."""
    credentials_block: str | None = None
    """Name of a Prefect Secret block holding the registry's S3 credentials as JSON
    (``{"aws_access_key_id": ..., "aws_secret_access_key": ...}``); tasks export them to
    their process environment, where s3fs finds them. Nothing logs or records them."""

    @field_validator("registry")
    @classmethod
    def _expand(cls, v: str) -> str:
        from wxmodels.config.data import expand

        v = expand(v)
        if not v.strip():
            raise ValueError("the registry path is empty")
        return v

    @field_validator("storage_options")
    @classmethod
    def _no_credentials(cls, v: dict[str, Any]) -> dict[str, Any]:
        found = sorted(_credential_keys(v))
        if found:
            raise ValueError(
                f"storage_options holds credentials ({', '.join(found)}): set "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment or name a Prefect "
                "Secret block in promote.credentials_block"
            )
        return v

    signing_key_block: str | None = None
    """Name of a Prefect Secret block holding the Ed25519 private key (PEM) that published
    manifests are signed with (``$WXC_SIGNING_KEY`` / ``$WXC_SIGNING_KEY_FILE`` otherwise;
    neither: versions are published unsigned)."""
    trusted_keys: list[str] = []
    """Public keys (PEM files or directories) that versions pulled by the pipeline itself (the
    current teacher, for a warm start or the champion check) must be signed with."""

    promote_teacher: bool = True
    """Publish the teacher and point the ``teacher`` alias at it."""
    teacher_tolerance: float = Field(0.02, ge=0)
    """A retrained teacher replaces the current one only if its RMSE, relative to the
    current teacher's on the same test window and averaged over the gated variables and
    leads, is at most ``1 + teacher_tolerance`` (seed-to-seed noise is a few per cent)."""
    teacher_max_regression: float = Field(0.10, ge=0)
    """... and no single gated variable and lead is worse than ``1 + this`` times."""
    hpc_max_rmse_increase: float = Field(0.02, ge=0)
    """``hpc``: the fastest passing candidate whose RMSE is within this fraction of the
    best passing candidate's at every gated variable and lead."""
