"""Fail fast, in one line, when the Prefect server goes away under a running command.

Without it a stage goes on computing for minutes with nowhere to report to, then dies in a wall
of client tracebacks. :class:`ServerWatch` polls the API's ``/health`` from a daemon thread;
after ``failures`` misses in a row it silences logging (every further line would be another
failed report), interrupts the main thread (``SIGINT``, so that context managers close the
Dask cluster and temporary files), and, should the interrupted run not unwind within
``grace`` seconds, ends the process. The CLI prints :meth:`message` and exits with 3.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading

from infra.stack import healthy

__all__ = ["EXIT_SERVER_LOST", "ServerLostFilter", "ServerWatch", "end_children"]

EXIT_SERVER_LOST = 3


class ServerWatch:
    """Watch the Prefect API at ``url`` while a command runs."""

    def __init__(self, url: str, *, interval: float = 2.0, failures: int = 3, grace: float = 30.0):
        self.url = url.rstrip("/")
        self.interval = interval
        self.failures = failures
        self.grace = grace
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wxc-server-watch", daemon=True)
        self._printed = threading.Lock()
        self._said = False

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def message(self) -> str:
        return (
            f"the Prefect server at {self.url} stopped answering (stopped with `wxc down`?), so "
            "the run stops here; what finished is kept: start the server (`wxc up`) and run the "
            "same command again to go on"
        )

    def say(self, write) -> None:
        """Print the message once, whoever gets there first (the CLI or the grace timer)."""
        with self._printed:
            if not self._said:
                self._said = True
                write(self.message())

    def gone(self) -> bool:
        """Whether the server is lost: as the watch found it, or as one more look finds it."""
        if self.lost.is_set():
            return True
        if not healthy(self.url, timeout=2.0):
            self._trip(interrupt=False)
            return True
        return False

    def _run(self) -> None:
        misses = 0
        while not self._stop.wait(self.interval):
            misses = 0 if healthy(self.url, timeout=min(5.0, 2 * self.interval)) else misses + 1
            if misses >= self.failures:
                self._trip()
                return

    def _trip(self, *, interrupt: bool = True) -> None:
        if self.lost.is_set():
            return
        self.lost.set()
        logging.disable(logging.CRITICAL)
        logging.raiseExceptions = False
        threading.excepthook = lambda args: None  # the client threads' own failures

        def last_resort() -> None:
            end_children()
            self.say(lambda m: sys.stderr.write(f"error: {m}\n"))
            sys.stderr.flush()
            os._exit(EXIT_SERVER_LOST)

        timer = threading.Timer(self.grace, last_resort)
        timer.daemon = True
        timer.start()
        if interrupt:
            os.kill(os.getpid(), signal.SIGINT)


def end_children(timeout: float = 5.0) -> None:
    """End this process's children (the Dask workers of a local cluster): they share its
    stderr, and would go on logging failed reports to the lost server after the one line."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for c in children:
        with contextlib.suppress(psutil.Error):
            c.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for c in alive:
        with contextlib.suppress(psutil.Error):
            c.kill()
    psutil.wait_procs(alive, timeout=timeout)


def _transport_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a failure to reach an HTTP server."""
    import httpx

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, httpx.TransportError | ConnectionError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class ServerLostFilter(logging.Filter):
    """Drops the log records of a run failing because the server is gone (a traceback per
    client call) and trips the watch at once, so that the user sees one line."""

    def __init__(self, watch: ServerWatch):
        super().__init__()
        self.watch = watch

    def filter(self, record: logging.LogRecord) -> bool:
        if self.watch.lost.is_set():
            return False
        exc = record.exc_info[1] if record.exc_info else None
        suspect = _transport_error(exc) or (
            record.levelno >= logging.WARNING
            and record.name.startswith("prefect.")
            and not record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))
        )
        return not (suspect and self.watch.gone())
