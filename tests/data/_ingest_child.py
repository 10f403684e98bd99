"""Run one ingest in a child process (the crash tests kill it). Argument: a DataConfig JSON."""

import sys

from wxmodels.config.data import DataConfig
from wxmodels.data.ingest import ingest

if __name__ == "__main__":
    rep = ingest(DataConfig.model_validate_json(sys.argv[1]))
    print(rep.appended, len(rep.revised))
