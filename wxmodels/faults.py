"""Named crash points, for tests that prove the store survives a SIGKILL at the worst moment.

Setting ``WXC_CRASH_AT=<point>`` makes the process kill itself with SIGKILL when it reaches
``<point>``; ``WXC_PAUSE_AT=<point>:<seconds>`` makes it wait there (so that a test can hold a
writer in its most fragile window while another one starts). Unset (the normal case) each
check is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import time

__all__ = ["POINTS", "crash_point"]

POINTS = (
    "append:after-data",  # new steps written, commit record not yet
    "revision:after-stage",  # backup and new values staged, intent not yet committed
    "revision:mid-region",  # intent committed, some variables rewritten in place
    "revision:after-region",  # every variable rewritten, final commit not yet
    "replay:after-ingest:<k>",  # a replay's tick k: data delivered and ingested
    "replay:after-train:<k>",  # tick k's retrain done, compress-validate-promote not yet
    "replay:after-tick:<k>",  # tick k in the timeline
)


def crash_point(name: str) -> None:
    """SIGKILL this process if ``WXC_CRASH_AT`` names ``name``; wait if ``WXC_PAUSE_AT`` does."""
    if os.environ.get("WXC_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("WXC_PAUSE_AT")
    if pause and pause.rsplit(":", 1)[0] == name:
        time.sleep(float(pause.rsplit(":", 1)[1]))
