"""Run one ingest in a child process (the crash tests kill it). Argument: a DataConfig JSON.

With ``WXC_TEST_BARRIER=<dir>`` the child imports everything, writes ``<dir>/ready-<pid>`` and
waits for ``<dir>/go`` before ingesting, so that a test can start several writers at once.
"""

import os
import sys
import time
from pathlib import Path

from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import ingest

if __name__ == "__main__":
    cfg = DataConfig.model_validate_json(sys.argv[1])
    barrier = os.environ.get("WXC_TEST_BARRIER")
    if barrier:
        (Path(barrier) / f"ready-{os.getpid()}").touch()
        while not (Path(barrier) / "go").exists():
            time.sleep(0.01)
    rep = ingest(cfg)
    print(rep.appended, len(rep.revised))
