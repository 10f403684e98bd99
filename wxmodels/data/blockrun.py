"""Running a write pass's chunk tasks a few at a time, folding their results as they finish.

Each task reads, writes and summarises one time chunk and returns that chunk's contribution;
the caller folds each contribution as soon as it arrives and drops it, so the memory a pass
needs is a few chunks', not the record's. The tasks run

* on threads of this process (Dask's local default: as many as ``num_workers`` or the CPUs),
  at most that many chunks at once; or one after the other under the synchronous scheduler;
* on the distributed cluster of the current client, whose workers each run as many chunks at
  once as they have threads, the results gathered as they finish.

A distributed worker over its memory pause threshold stops running tasks until its memory
falls; if it never does, a pass would wait forever. :class:`Watchdog` polls the scheduler and
raises :class:`PausedWorkerError` naming the worker, its memory and its limit once
a worker has stayed paused for ``paused_timeout_s`` with no chunk finishing meanwhile.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_threads
from typing import Any

import dask

from wxmodels.errors import WxcError

__all__ = ["PAUSED_TIMEOUT_S", "PausedWorkerError", "Watchdog", "run_blocks"]

log = logging.getLogger(__name__)

PAUSED_TIMEOUT_S = 120.0
"""Default for how long a paused worker may hold a pass up with no chunk finishing."""
POLL_S = 0.5
"""How often a pass on a cluster looks at its workers."""

_SYNC = ("sync", "synchronous", "single-threaded")


class PausedWorkerError(WxcError, RuntimeError):
    """A Dask worker stayed paused (over its memory limit) and the pass stopped advancing.

    Not a :class:`~wxmodels.errors.DataError`: the data is not at fault, and the ingest must
    not go on to look for a bad input on the same stuck cluster. Not retried by the pipeline
    either: the same workers would pause again."""


def run_blocks(
    tasks: Sequence[Any],
    fold: Callable[[Any], None],
    *,
    paused_timeout_s: float = PAUSED_TIMEOUT_S,
    chunk_bytes: int = 0,
) -> None:
    """Compute the Dask ``tasks`` (delayed objects) and call ``fold`` on each result, in the
    order they finish. ``chunk_bytes``: the data one task holds (named in a paused-worker
    error). Raises the first task's exception (the others are cancelled)."""
    client = _client()
    if client is not None:
        _on_cluster(client, tasks, fold, paused_timeout_s, chunk_bytes)
    elif dask.config.get("scheduler", None) in _SYNC:
        for t in tasks:
            fold(dask.compute(t, scheduler="sync")[0])
    else:
        n = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
        _on_threads(tasks, fold, n)


def _client() -> Any:
    """The distributed client Dask would use here, or ``None`` (local schedulers)."""
    if dask.config.get("scheduler", None) in (*_SYNC, "threads", "threading", "processes"):
        return None
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _sync(task: Any) -> Any:
    return dask.compute(task, scheduler="sync")[0]


def _on_threads(tasks: Sequence[Any], fold: Callable[[Any], None], n: int) -> None:
    """At most ``n`` chunks in flight; each finished one is folded and dropped before the
    next one starts."""
    todo = iter(tasks)
    pending: set[Future] = set()
    with ThreadPoolExecutor(n, thread_name_prefix="wxc-write") as pool:

        def submit() -> None:
            t = next(todo, None)
            if t is not None:
                pending.add(pool.submit(_sync, t))

        for _ in range(n):
            submit()
        try:
            while pending:
                done, rest = wait_threads(pending, return_when=FIRST_COMPLETED)
                pending.clear()
                pending.update(rest)
                for f in done:
                    fold(f.result())
                    submit()
                del done
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _on_cluster(
    client: Any,
    tasks: Sequence[Any],
    fold: Callable[[Any], None],
    paused_timeout_s: float,
    chunk_bytes: int,
) -> None:
    from distributed import wait

    pending = set(client.compute(list(tasks)))
    watch = Watchdog(client, paused_timeout_s, total=len(pending), chunk_bytes=chunk_bytes)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                watch.check()
                continue
            for f in done:
                fold(f.result())
                f.release()
                watch.progress()
            del done
            watch.check()
    except BaseException:
        client.cancel(list(pending))
        raise


class Watchdog:
    """Raises when a worker stays paused with no chunk finishing (see the module docstring).

    Args:
        client: a ``distributed.Client``.
        timeout_s: how long a worker may stay paused while no chunk finishes.
        total: chunks in the pass (for the message); chunk_bytes: the data a task holds.
    """

    def __init__(self, client: Any, timeout_s: float, *, total: int = 0, chunk_bytes: int = 0):
        self.client = client
        self.timeout_s = timeout_s
        self.total = total
        self.chunk_bytes = chunk_bytes
        self.done = 0
        self.last_progress = time.monotonic()
        self.last_check = 0.0
        self.paused_since: dict[str, float] = {}

    def progress(self) -> None:
        self.done += 1
        self.last_progress = time.monotonic()

    def check(self) -> None:
        now = time.monotonic()
        if now - self.last_check < POLL_S:
            return
        self.last_check = now
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        for addr, w in workers.items():
            if "paused" in str(w.get("status", "")).lower():
                if addr not in self.paused_since:
                    log.warning("write pass: Dask worker %s is paused (memory)", addr)
                self.paused_since.setdefault(addr, now)
            else:
                self.paused_since.pop(addr, None)
        for addr in [a for a in self.paused_since if a not in workers]:
            del self.paused_since[addr]
        stuck = [
            a
            for a, since in self.paused_since.items()
            if now - max(since, self.last_progress) >= self.timeout_s
        ]
        if stuck:
            raise PausedWorkerError(self._message(stuck[0], workers[stuck[0]], now))

    def _message(self, addr: str, w: dict[str, Any], now: float) -> str:
        mib = 2**20
        mem = w.get("metrics", {}).get("memory", 0) / mib
        limit = (w.get("memory_limit") or 0) / mib
        pause = dask.config.get("distributed.worker.memory.pause", 0.8)
        over = f"; it pauses above {limit * pause:.0f} MiB" if pause and limit else ""
        held = f"; a chunk is {self.chunk_bytes / mib:.0f} MiB of data" if self.chunk_bytes else ""
        return (
            f"ingest stopped: Dask worker {addr} has been paused for "
            f"{now - self.paused_since[addr]:.0f} s with no chunk finishing (process memory "
            f"{mem:.0f} MiB of its {limit:.0f} MiB limit{over}){held}; {self.done} of "
            f"{self.total} "
            "chunks were written, nothing was committed. Give the workers more memory, fewer "
            "threads each, or a smaller data.time_chunk (data.paused_timeout_s sets this wait)."
        )
