"""What every cdrflow DAG shares: its owner, its start date, its retry policy, and where its tasks
run on a Celery deployment (queue and pool).

Queues: collectors talk to carriers' servers (a slow IMAP server can hold a task for minutes),
processing and billing talk to the warehouse. They go to separate Celery queues so that a
deployment can give processing workers of its own that no collector can occupy
(``docker-compose.yaml``: ``airflow-worker-2`` serves processing only). Other executors ignore
queues. Names: ``CDRFLOW_COLLECT_QUEUE`` (default ``cdrflow_collect``) and
``CDRFLOW_PROCESS_QUEUE`` (default ``cdrflow_process``), read when the DAG files are parsed.

Pool: when ``CDRFLOW_WAREHOUSE_POOL`` names an Airflow pool (the deployment's init step creates
it, sized to what the warehouse server takes at once), every task that works on the warehouse
(processing, billing, registering) takes a slot of it, however many workers there are: adding
workers adds collectors, not concurrent loads beyond what the warehouse was sized for. Unset
(``make airflow``, the tests) the tasks use Airflow's ``default_pool``.

Retries: ``CDRFLOW_RETRY_DELAY_SECONDS``, when set, is the first retry delay of every task (each
DAG's own otherwise): how soon the task of a lost worker is tried again on another.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")  # no catch-up: only a lower bound for the scheduler


def collect_queue() -> str:
    """The Celery queue of the collectors' tasks."""
    return os.environ.get("CDRFLOW_COLLECT_QUEUE") or "cdrflow_collect"


def process_queue() -> str:
    """The Celery queue of every other task (processing, billing, registering, reports)."""
    return os.environ.get("CDRFLOW_PROCESS_QUEUE") or "cdrflow_process"


def warehouse_pool() -> str | None:
    """The Airflow pool that bounds the tasks working on the warehouse; None: ``default_pool``."""
    return os.environ.get("CDRFLOW_WAREHOUSE_POOL") or None


def retry_delay_override() -> timedelta | None:
    """The deployment's retry delay (``CDRFLOW_RETRY_DELAY_SECONDS``), or None."""
    seconds = os.environ.get("CDRFLOW_RETRY_DELAY_SECONDS", "").strip()
    return timedelta(seconds=float(seconds)) if seconds else None


def default_args(retries: int = 2, retry_delay: timedelta = timedelta(minutes=1), **more: Any) -> dict[str, Any]:
    """Task defaults: owned by cdrflow, retried with exponential back-off, on the processing
    queue and in the warehouse pool (when one is configured); ``more`` overrides any of them."""
    args: dict[str, Any] = {
        "owner": "cdrflow",
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        "queue": process_queue(),
    }
    if pool := warehouse_pool():
        args["pool"] = pool
    args.update(more)
    if override := retry_delay_override():
        args["retry_delay"] = override
    return args


def collector_args(**more: Any) -> dict[str, Any]:
    """Task defaults of the collectors: the collect queue, outside the warehouse pool (registering
    a file is one short transaction; a carrier's slow server must not hold a loading slot)."""
    args = default_args(**more)
    args["queue"] = collect_queue()
    args.pop("pool", None)
    return args
