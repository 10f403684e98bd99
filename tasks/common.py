"""What every task shares: a retry policy that does not retry user errors."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from wxmodels.errors import WxcError

__all__ = [
    "IO_RETRIES",
    "IO_RETRY_DELAYS",
    "retry_unless_user_error",
    "store_slot",
    "store_slot_name",
    "use_credentials",
    "use_signing_key",
]

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


_ENV = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
}


def use_credentials(block: str | None) -> None:
    """Export the S3 credentials held by the Prefect Secret block ``block`` (JSON object with
    ``aws_access_key_id``, ``aws_secret_access_key`` and optionally ``aws_session_token``) to
    this process's environment, where s3fs/botocore find them. Values are never logged."""
    if not block:
        return
    from prefect.blocks.system import Secret

    value = Secret.load(block).get()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, dict) or not {"aws_access_key_id", "aws_secret_access_key"} <= set(
        value
    ):
        raise WxcError(
            f"Secret block {block!r} must hold a JSON object with aws_access_key_id and "
            "aws_secret_access_key"
        )
    for k, env in _ENV.items():
        if value.get(k):
            os.environ[env] = str(value[k])


def use_signing_key(block: str | None) -> None:
    """Export the manifest-signing key held by the Prefect Secret block ``block`` (an Ed25519
    private key in PEM) to ``$WXC_SIGNING_KEY`` for this process; never logged."""
    if not block:
        return
    from prefect.blocks.system import Secret

    value = Secret.load(block).get()
    if not isinstance(value, str) or "PRIVATE KEY" not in value:
        raise WxcError(f"Secret block {block!r} must hold a PEM private key (Ed25519)")
    os.environ["WXC_SIGNING_KEY"] = value


def store_slot_name(url: str) -> str:
    """The Prefect global concurrency limit that stands for one store's writer lock."""
    from wxmodels.utils import stable_hash

    return f"wxc-store-{stable_hash(url, 12)}"


@contextlib.contextmanager
def store_slot(url: str, timeout_s: float) -> Iterator[None]:
    """Hold the store's one slot in Prefect (a global concurrency limit of 1, created on first
    use): the store lock's companion, so that a scheduled ingest beside a manual one shows in
    the UI as waiting for the store rather than as running. The store's own lock
    (:meth:`wxmodels.data.store.Store.writing`) is what keeps writers apart."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    name = store_slot_name(url)
    with get_client(sync_client=True) as client, contextlib.suppress(Exception):
        client.upsert_global_concurrency_limit_by_name(name, 1)  # racing creators: one wins
    with concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True):
        yield
