"""Named crash points, for tests that prove the store survives a SIGKILL at the worst moment.

Setting ``WXC_CRASH_AT=<point>`` makes the process kill itself with SIGKILL when it reaches
``<point>``; unset (the normal case) the check is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["POINTS", "crash_point"]

POINTS = (
    "append:after-data",  # new steps written, commit record not yet
    "revision:after-stage",  # backup and new values staged, intent not yet committed
    "revision:mid-region",  # intent committed, some variables rewritten in place
    "revision:after-region",  # every variable rewritten, final commit not yet
)


def crash_point(name: str) -> None:
    """SIGKILL this process if ``WXC_CRASH_AT`` names ``name``."""
    if os.environ.get("WXC_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
