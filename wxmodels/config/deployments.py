"""The scheduled deployments: one source of truth for what runs when
(``configs/deployments.yaml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from wxmodels.config.base import Strict

__all__ = ["DEPLOYMENT_NAMES", "DeploymentsConfig", "load_deployments"]

DEPLOYMENT_NAMES = {
    "ingest": "scheduled-ingest/wxc-ingest",
    "retrain": "retrain/wxc-retrain",
    "compress": "compress-validate-promote/wxc-compress-validate-promote",
}
"""``<flow>/<deployment>`` of each scheduled deployment (read by the runner and by the stack's
health check, which must not import the flows)."""


def _cron(v: str | None) -> str | None:
    if v is not None and len(v.split()) != 5:
        raise ValueError(f"{v!r} is not a 5-field cron expression (minute hour day month weekday)")
    return v


class DeploymentsConfig(Strict):
    """The operational schedule of one cycle config.

    * ``ingest`` runs on ``ingest_cron`` and appends what is new;
    * ``retrain`` runs on ``retrain_cron`` (one at a time) and trains the teacher on the store's
      current version; a *new* teacher emits the event ``wxc.teacher.trained``;
    * ``compress-validate-promote`` is triggered by that event: matrix, validation, promotion.
    """

    config: str = "configs/demo.yaml"
    """The cycle config every deployment runs (path relative to the working directory)."""
    overrides: list[str] = []
    """``--set`` style overrides applied on top of it."""
    ingest_cron: str | None = "15 * * * *"
    """Hourly by default (a quarter past: providers publish on the hour); ``null``: manual."""
    retrain_cron: str | None = "0 3 * * 1"
    """Weekly, Monday 03:00 by default; ``null``: manual."""
    timezone: str = "UTC"
    tags: list[str] = Field(default_factory=lambda: ["wxcompress"])
    retrain_concurrency: int = Field(1, ge=1, le=64)
    """Retrain runs at most this many at a time (one: a second waits)."""
    compress_concurrency: int = Field(1, ge=1, le=64)

    @field_validator("ingest_cron", "retrain_cron")
    @classmethod
    def _cron_ok(cls, v: str | None) -> str | None:
        return _cron(v)


def load_deployments(path: str | Path, overrides: list[str] | None = None) -> DeploymentsConfig:
    from wxmodels.config.cycle import load_model

    return load_model(DeploymentsConfig, path, overrides, "deployments file")
