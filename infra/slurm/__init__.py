"""A real single-node SLURM on loopback for the tests and local trials of ``runtime.cluster:
slurm``."""

from infra.slurm.cluster import LoopbackSlurm, slurm_unavailable

__all__ = ["LoopbackSlurm", "slurm_unavailable"]
