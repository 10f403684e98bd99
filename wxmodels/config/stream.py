"""How the stages read the store: all of it into memory, or streamed in bounded memory."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wxmodels.config.base import Strict

__all__ = ["StreamConfig"]


class StreamConfig(Strict):
    """Reading the store for statistics, training, baselines, calibration and scoring.

    ``mode: memory`` loads the committed fields once (the fastest on small grids);
    ``stream`` reads time chunks as they are used through a bounded cache (training samples
    come from a data loader whose worker processes prefetch batches); ``auto`` streams when
    the fields would take more than ``auto_above_mb``.
    """

    mode: Literal["auto", "memory", "stream"] = "auto"
    auto_above_mb: float = Field(2048.0, gt=0)
    cache_mb: float = Field(256.0, gt=0)
    """Chunk cache of each reading process (the main one and every loader worker)."""
    max_read_mb: float = Field(2048.0, gt=0)
    """The largest single read; a step that asks for more fails with the size instead of
    swapping (a bound on what any one stage holds)."""
    loader_workers: int = Field(2, ge=0, le=64)
    """Data-loader worker processes for training (0: read in the training process)."""
    prefetch: int = Field(2, ge=1, le=64)
    """Batches each loader worker reads ahead."""
    window_chunks: int = Field(4, ge=1, le=10_000)
    """Chunk-aware sampling: an epoch visits the store's time chunks in random order, and
    shuffles the samples within windows of this many chunks (a batch reads a few chunks, each
    chunk is read about once per epoch and worker, instead of once per sample)."""
    max_fit_inits: int = Field(2000, ge=16)
    """Regression baselines and the SEEPS climatology fit on at most this many training
    steps (evenly spaced) when streaming; their normal equations on all of them would hold
    the archive."""
