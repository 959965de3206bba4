"""Airflow's local settings hook for cdrflow, imported by every Airflow process as it starts
(Airflow puts the plugins folder on ``sys.path``).

The processes that fork task processes (a scheduler with the LocalExecutor, a Celery worker)
import Great Expectations and build the validation suites first, so that no processing task pays
that again (``cdrflow.orchestration.preload``). ``CDRFLOW_NO_PRELOAD=1`` turns it off.

Airflow refuses to start when this module fails to import, so nothing here may raise: where
cdrflow itself cannot be imported, Airflow starts without the preload and says why.
"""

from __future__ import annotations

import logging
import sys

try:
    from airflow.configuration import conf

    from cdrflow.orchestration.preload import preload_if_forking
except ImportError as exc:  # the DAGs will say the same, louder: Airflow itself must still start
    logging.getLogger(__name__).warning("cdrflow: no preload of Great Expectations (%s)", exc)
else:
    preload_if_forking(sys.argv[1:], conf.get("core", "executor", fallback=""))
