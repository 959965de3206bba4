"""The host name Airflow records for a task instance (``[core] hostname_callable``).

In a container each Celery worker has a host name of its own. ``make cluster`` runs two workers
as processes of one machine, where the FQDN is the same for both: ``CDRFLOW_HOSTNAME`` (set per
worker, from the compose service's ``hostname``) tells them apart in the task instances, the UI
and the cluster test.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """``CDRFLOW_HOSTNAME`` when set, else the machine's FQDN (Airflow's own default)."""
    return os.environ.get("CDRFLOW_HOSTNAME") or socket.getfqdn()
