"""Prefect tasks: one per re-runnable unit of work, each a thin wrapper over one wxmodels call.

Tasks take configs, URIs and small records, and return small JSON-able records.
"""

import logging as _logging

# The library logs at INFO (what each cell, fit and store write did); wherever tasks run
# (Dask worker processes included) its records go to the run's logs through Prefect's handler
# (PREFECT_LOGGING_EXTRA_LOGGERS=wxmodels), so the logger must let INFO through.
if _logging.getLogger("wxmodels").level == _logging.NOTSET:
    _logging.getLogger("wxmodels").setLevel(_logging.INFO)

# A batch of log records the API cannot take (the server is down) is dropped without a note on
# stderr per batch: the console keeps every line, and the CLI says once that the server is gone
# (flows/watchdog.py). Without this, each worker process prints "Error logging to API" lines.
_logging.raiseExceptions = False
