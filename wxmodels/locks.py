"""One writer at a time: a file lock on local disks, a lease on object storage, one interface.

* **Local** (:class:`FileLock`): ``fcntl.flock`` on a file inside the claimed path. The kernel
  releases it when the holder dies, however it dies, so a stale lock cannot exist.
* **Object storage** (:class:`LeaseLock`): S3-compatible servers do not all offer conditional
  writes (OpenStack Swift's s3api refuses ``If-None-Match``), so the lease is Lamport's bakery
  algorithm over plain objects, which needs only read-after-write and list-after-write
  consistency (AWS S3, Ceph RGW, MinIO, Swift on one node): a writer takes a ticket numbered
  above every ticket it sees, and holds the lease once no older ticket and no writer still
  choosing its number is left. Tickets are refreshed by the holder every ``ttl / 6``; a ticket
  not refreshed for ``ttl`` seconds *of the server's clock* (its ``LastModified`` against the
  waiter's own freshly written ticket) is stale and removed, which is how the lease of a
  killed writer is taken over. A holder that finds its ticket gone has lost the lease and says
  so at its next :meth:`check` (called before every commit).

Both are re-entrant within a thread (a writer that holds the lock may call code that takes it
again) and exclusive between threads and processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime
from typing import Any

from wxmodels.errors import LockError

__all__ = ["FileLock", "LeaseLock", "Lock", "holder_info"]

log = logging.getLogger(__name__)

_local = threading.local()
_guards: dict[str, threading.RLock] = {}
_guards_lock = threading.Lock()


def holder_info() -> dict[str, Any]:
    """Who holds a lock: shown to the writer that waits for it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": user,
        "since": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another writer"
    return f"{info.get('user')}@{info.get('host')} pid {info.get('pid')} since {info.get('since')}"


class Lock:
    """Base class: ``with lock:`` acquires (waiting up to ``timeout`` seconds) and releases."""

    def __init__(self, key: str, what: str, timeout: float):
        self.key = key
        self.what = what
        self.timeout = timeout

    # re-entrancy: per key, a thread-level RLock and a count of this thread's holds
    def _guard(self) -> threading.RLock:
        with _guards_lock:
            return _guards.setdefault(self.key, threading.RLock())

    def _depth(self) -> int:
        return getattr(_local, "depth", {}).get(self.key, 0)

    def _set_depth(self, n: int) -> None:
        if not hasattr(_local, "depth"):
            _local.depth = {}
        _local.depth[self.key] = n

    @property
    def held(self) -> bool:
        return self._depth() > 0

    def __enter__(self) -> Lock:
        guard = self._guard()
        if not guard.acquire(timeout=self.timeout if self.timeout >= 0 else -1):
            raise LockError(f"{self.what} is being written by another thread of this process")
        try:
            if self._depth() == 0:
                self._acquire()
        except BaseException:
            guard.release()
            raise
        self._set_depth(self._depth() + 1)
        return self

    def __exit__(self, *exc: object) -> None:
        n = self._depth() - 1
        self._set_depth(n)
        try:
            if n == 0:
                self._release()
        finally:
            self._guard().release()

    def check(self) -> None:
        """Raise :class:`LockError` when the lock is no longer held (a lease that expired)."""
        if not self.held:
            raise LockError(f"{self.what}: writing without holding its lock")

    def _acquire(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class FileLock(Lock):
    """``flock`` on ``path`` (created if needed); the holder's identity is written into it."""

    def __init__(self, path: str, what: str, timeout: float = 600.0, poll: float = 0.2):
        super().__init__(os.path.abspath(path), what, timeout)
        self.path = path
        self.poll = poll
        self._fd: int | None = None

    def _acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        t0 = time.monotonic()
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                info = self._read(fd)
                if time.monotonic() - t0 >= self.timeout:
                    os.close(fd)
                    raise LockError(
                        f"{self.what} is being written by {_describe(info)}; gave up after "
                        f"{self.timeout:.0f} s (run again when it is done)"
                    ) from None
                if not waited:
                    log.warning("%s is being written by %s: waiting", self.what, _describe(info))
                    waited = True
                time.sleep(self.poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder_info()).encode(), 0)
        self._fd = fd

    @staticmethod
    def _read(fd: int) -> dict[str, Any] | None:
        try:
            return json.loads(os.pread(fd, 4096, 0) or b"null")
        except (OSError, json.JSONDecodeError):
            return None

    def _release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _ticket(n: int, me: str) -> str:
    return f"{n:016d}-{me}"


class LeaseLock(Lock):
    """A lease on object storage under ``prefix`` (see the module docstring).

    Args:
        fs: an fsspec file system (s3fs).
        prefix: where the lease's objects live (``<store>/_wxc/lease``).
        ttl: seconds after which a ticket that was not refreshed is stale (server clock).
        poll: seconds between looks while waiting.
    """

    def __init__(
        self,
        fs: Any,
        prefix: str,
        what: str,
        timeout: float = 600.0,
        ttl: float = 60.0,
        poll: float = 0.5,
    ):
        super().__init__(f"{fs.protocol}:{prefix}", what, timeout)
        self.fs = fs
        self.prefix = prefix.rstrip("/")
        self.ttl = ttl
        self.poll = poll
        self.me = uuid.uuid4().hex
        self._mine: str | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _put(self, path: str) -> None:
        self.fs.pipe_file(path, json.dumps(holder_info()).encode())

    def _listing(self) -> dict[str, dict[str, Any]]:
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(self.prefix, detail=True)
        except FileNotFoundError:
            return {}
        return {p.rstrip("/"): info for p, info in found.items()}

    @staticmethod
    def _stamp(info: dict[str, Any]) -> float:
        v = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
        if isinstance(v, datetime):
            return v.timestamp()
        return float(v or 0.0)

    def _holder(self, path: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(path))
        except (OSError, json.JSONDecodeError):
            return None

    def _acquire(self) -> None:
        self._lost.clear()
        choosing = f"{self.prefix}/choosing/{self.me}"
        tickets = f"{self.prefix}/tickets"
        self._put(choosing)
        numbers = [
            int(p.rsplit("/", 1)[-1].split("-", 1)[0])
            for p in self._listing()
            if p.startswith(f"{tickets}/")
        ]
        n = max(numbers, default=0) + 1
        self._mine = f"{tickets}/{_ticket(n, self.me)}"
        self._put(self._mine)
        self.fs.rm_file(choosing)
        t0 = time.monotonic()
        waited = False
        try:
            while True:
                listing = self._listing()
                if self._mine not in listing:  # removed as stale while we were slow
                    self._put(self._mine)
                    continue
                now = self._stamp(listing[self._mine])
                blockers = []
                for p, info in listing.items():
                    if p == self._mine or p.endswith(f"/{self.me}"):
                        continue
                    name = p.rsplit("/", 1)[-1]
                    if now - self._stamp(info) > self.ttl:
                        log.warning(
                            "%s: taking over a stale lock (%s, not refreshed for %.0f s)",
                            self.what,
                            _describe(self._holder(p)),
                            now - self._stamp(info),
                        )
                        with contextlib.suppress(FileNotFoundError):
                            self.fs.rm_file(p)
                        continue
                    if (
                        p.startswith(f"{self.prefix}/choosing/")
                        or name < self._mine.rsplit("/", 1)[-1]
                    ):
                        blockers.append(p)
                if not blockers:
                    break
                if time.monotonic() - t0 >= self.timeout:
                    raise LockError(
                        f"{self.what} is being written by {_describe(self._holder(blockers[0]))};"
                        f" gave up after {self.timeout:.0f} s (run again when it is done)"
                    )
                if not waited:
                    log.warning(
                        "%s is being written by %s: waiting",
                        self.what,
                        _describe(self._holder(blockers[0])),
                    )
                    waited = True
                time.sleep(self.poll)
                self._put(self._mine)  # refresh: our ticket's LastModified is the server's now
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(self._mine)
            self._mine = None
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name="wxc-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 6):
            mine = self._mine
            if mine is None:
                return
            try:
                self.fs.invalidate_cache()
                if not self.fs.exists(mine):
                    log.error("%s: the lease was taken over (it expired)", self.what)
                    self._lost.set()
                    return
                self._put(mine)
            except Exception as e:  # a hiccup: the next round tries again within the ttl
                log.warning("%s: could not refresh the lease: %s", self.what, e)

    def check(self) -> None:
        super().check()
        if self._lost.is_set():
            raise LockError(
                f"{self.what}: the lease expired and another writer took over; nothing was "
                "committed (run again)"
            )

    def _release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._mine is not None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._mine)
            self.fs.invalidate_cache()
            self._mine = None
