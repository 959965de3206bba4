"""What every cdrflow DAG shares: its owner, its start date and its retry policy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")  # no catch-up: only a lower bound for the scheduler


def default_args(retries: int = 2, retry_delay: timedelta = timedelta(minutes=1), **more: Any) -> dict[str, Any]:
    """Task defaults: owned by cdrflow, retried with exponential back-off."""
    return {
        "owner": "cdrflow",
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        **more,
    }
