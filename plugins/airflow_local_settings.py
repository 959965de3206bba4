"""Airflow's local settings hook for cdrflow, imported by every Airflow process as it starts
(Airflow puts the plugins folder on ``sys.path``).

The processes that fork task processes (a scheduler with the LocalExecutor, a Celery worker)
import Great Expectations and build the validation suites first, so that no processing task pays
that again (``cdrflow.orchestration.preload``). ``CDRFLOW_NO_PRELOAD=1`` turns it off.
"""

from __future__ import annotations

import sys

from airflow.configuration import conf

from cdrflow.orchestration.preload import preload_if_forking

preload_if_forking(sys.argv[1:], conf.get("core", "executor", fallback=""))
