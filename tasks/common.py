"""What every task shares: a retry policy that does not retry user errors."""

from __future__ import annotations

from typing import Any

from wxmodels.errors import WxcError

__all__ = ["IO_RETRIES", "IO_RETRY_DELAYS", "retry_unless_user_error"]

IO_RETRIES = 3
IO_RETRY_DELAYS = [2, 10, 30]  # seconds: back off on object storage / file system hiccups


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O faults; never retry bad input (a :class:`WxcError`), it would fail the same way."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:
            return True
    return not isinstance(exc, WxcError | ValueError | KeyError | TypeError)
