"""What a deployment with several machines changes: storage that only one machine sees.

Under Airflow's CeleryExecutor a task runs on whichever worker takes it, so a path on one
machine's disk (a ``file://`` raw store, a local ``bucket`` drop folder, the embedded warehouse
under the state directory) is a different place on every worker: files registered on one would
be missing on the next. Such storage is refused there unless the operator declares it shared
(``CDRFLOW_SHARED_STORAGE=1``: the path is an NFS or similar mount on every worker, or all
workers run on one machine, as ``make cluster`` does). The embedded warehouse is refused under
Celery whatever the declaration: a server started by whichever worker asked first is no
warehouse for the others.
"""

from __future__ import annotations

import os
import sys

from cdrflow.config.errors import ConfigurationError

SHARED_VARIABLE = "CDRFLOW_SHARED_STORAGE"


def celery_executor() -> bool:
    """Whether this process belongs to a deployment on the CeleryExecutor (Airflow's
    ``[core] executor``, from the environment or, inside Airflow, its configuration)."""
    configured = os.environ.get("AIRFLOW__CORE__EXECUTOR")
    if configured is None and "airflow.configuration" in sys.modules:  # inside Airflow: its config file too
        from airflow.configuration import conf

        configured = conf.get("core", "executor", fallback="")
    return "celery" in (configured or "").lower()


def shared_storage() -> bool:
    """Whether local paths are declared visible to every worker (``CDRFLOW_SHARED_STORAGE``)."""
    return os.environ.get(SHARED_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def refuse_local(what: str, where: str) -> None:
    """Raise :class:`ConfigurationError` when ``what`` (at ``where``, a local path) is used under
    the CeleryExecutor without being declared shared."""
    if celery_executor() and not shared_storage():
        raise ConfigurationError(
            f"{what} {where} is a local path, but tasks run on several Celery workers that do not "
            f"share it: use s3:// (or another object store), or mount it on every worker and set "
            f"{SHARED_VARIABLE}=1"
        )
