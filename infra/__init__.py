"""The local stack (Prefect server, ...) and production manifests (compose, Kubernetes, SLURM)."""
