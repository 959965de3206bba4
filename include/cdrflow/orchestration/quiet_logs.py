"""Library chatter out of cdrflow's task logs.

At INFO, Great Expectations logs about 200 ``Skipping registering function DataSourceManager...``
lines each time it is imported, and fsspec, s3fs, botocore and paramiko log every request and
handshake: an operator opening a task log scrolled past hundreds of them to find cdrflow's own
lines. :func:`quiet` sets those libraries' loggers to WARNING (their warnings and errors still
show). It runs when any cdrflow DAG file is parsed (``cdrflow.orchestration`` imports it), which
is also how every task process starts, and again at the start of the processing tasks.

``CDRFLOW_LIBRARY_LOG_LEVEL`` (e.g. ``DEBUG``) sets another level for them, to debug a library.
"""

from __future__ import annotations

import logging
import os

ENV = "CDRFLOW_LIBRARY_LOG_LEVEL"
NOISY = (
    "great_expectations",
    "great_expectations._docs_decorators",  # "Skipping registering function ..."
    "great_expectations.data_context.types.base",  # sets itself to INFO when imported
    "fsspec",
    "s3fs",
    "botocore",
    "boto3",
    "aiobotocore",
    "urllib3",
    "paramiko",
    "asyncssh",
)


def level() -> int:
    """The level for the noisy libraries: ``CDRFLOW_LIBRARY_LOG_LEVEL`` or WARNING."""
    name = (os.environ.get(ENV) or "WARNING").strip().upper()
    value = logging.getLevelName(name)
    return value if isinstance(value, int) else logging.WARNING


def quiet() -> None:
    """Set the noisy libraries' loggers to :func:`level` (cheap; safe to call again)."""
    wanted = level()
    for name in NOISY:
        logging.getLogger(name).setLevel(wanted)
