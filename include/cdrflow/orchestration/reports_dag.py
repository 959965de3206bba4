"""The report DAGs: ``cdrflow_reports`` builds report requests, ``cdrflow_reports_housekeeping``
deletes expired reports.

``cdrflow_reports``::

    plan ──> build (mapped: one task per builder) ──> summary

- **When it runs.** A request is created by the API, which runs in another process (Airflow's API
  server or ``cdrflow api serve``) and has no business writing to Airflow's metadata database, so
  it cannot emit an asset event itself. Instead the asset ``cdrflow_report_requested`` has an
  :class:`~airflow.sdk.AssetWatcher` (event-driven scheduling, Airflow 3): the triggerer runs
  :class:`PendingReportsTrigger`, which reads the warehouse every ``CDRFLOW_REPORTS_POLL_SECONDS``
  (default 10) and fires an asset event when a pending request appears that it has not announced
  yet. The DAG is scheduled on that asset **or** every 5 minutes (``AssetOrTimeSchedule``), a
  sweep that builds whatever the watcher missed (a triggerer that was down, a request requeued).
  The other options were weighed: the API calling Airflow's REST API needs Airflow credentials in
  the API process and fails when Airflow is away; a one-minute schedule makes 1,440 runs a day
  for nothing. The triggerer needs the warehouse URL (``CDRFLOW_DATABASE_URL`` or
  ``AIRFLOW_CONN_CDRFLOW_WAREHOUSE``) in its environment, as the workers do.
- ``plan`` requeues the Failed requests an operator named, marks Failed the requests whose builds
  kept dying, and asks for as many builders as there are pending requests, at most **Builders**.
- ``build`` claims one pending request after another (``FOR UPDATE SKIP LOCKED``: two builders,
  of this run or of an overlapping one, never build the same) until none is left
  (:mod:`cdrflow.reports.build`). A report that fails is recorded as Failed on its request; the
  task fails only when the warehouse itself cannot be reached.
- ``summary`` logs what was built.

``cdrflow_reports_housekeeping`` runs daily at 03:30 UTC: reports whose 30 days are over lose
their file in the artifact store and their requests become Expired (4); unfinished files of dead
builds are removed (:mod:`cdrflow.reports.housekeeping`). A file that cannot be deleted fails the
run (retried) after every other one was done.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronTriggerTimetable,
    Param,
    get_current_context,
    task,
)
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from cdrflow.config.errors import CdrflowError, one_line
from cdrflow.orchestration.defaults import START_DATE, default_args

SWEEP = "*/5 * * * *"
HOUSEKEEPING = "30 3 * * *"


def poll_seconds() -> float:
    """How often the watcher reads the warehouse for new requests (``CDRFLOW_REPORTS_POLL_SECONDS``)."""
    return max(float(os.environ.get("CDRFLOW_REPORTS_POLL_SECONDS") or 10), 1.0)


class PendingReportsTrigger(BaseEventTrigger):
    """Fires an asset event when report requests appear that it has not announced yet.

    It remembers which pending requests it announced (only those still pending), so a request is
    announced once however long it waits; after a triggerer restart the pending ones are
    announced again, which at worst starts one run that finds nothing to do. A warehouse that
    cannot be reached is logged and tried again at the next poll: the trigger never ends."""

    def __init__(self, poll_seconds: float = 10.0, limit: int = 1000):
        super().__init__()
        self.poll_seconds = float(poll_seconds)
        self.limit = int(limit)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.PendingReportsTrigger", {"poll_seconds": self.poll_seconds, "limit": self.limit})

    def _pending(self) -> list[str]:
        from cdrflow.reports.build import pending_ids
        from cdrflow.warehouse import db

        return pending_ids(db.get_engine(), self.limit)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced: set[str] = set()
        while True:
            try:
                pending = await asyncio.to_thread(self._pending)
            except Exception as exc:  # the warehouse is away: try again at the next poll
                self.log.warning("pending report requests not read: %s", one_line(exc))
            else:
                new = [i for i in pending if i not in announced]
                announced = set(pending)
                if new:
                    yield TriggerEvent({"requests": new[:20], "new": len(new)})
            await asyncio.sleep(self.poll_seconds)


REPORT_REQUESTED = Asset(
    name="cdrflow_report_requested",
    uri="cdrflow://reports/requested",
    group="cdrflow",
    watchers=[AssetWatcher(name="cdrflow_pending_reports", trigger=PendingReportsTrigger(poll_seconds=poll_seconds()))],
)


def request_id_list(value: object) -> list[str]:
    """Request ids typed into the form (one per line, or separated by commas or spaces)."""
    from cdrflow.reports.requests import request_id

    if value is None or value == "":
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for part in (p for item in items for p in re.split(r"[\s,;]+", str(item)) if p):
        ident = request_id(part)
        if ident is None:
            raise CdrflowError(f"Retry failed requests: {part[:60]!r} is not a report request id (a UUID)")
        if ident not in out:
            out.append(ident)
    return out


def not_failed_requests(engine: Any, ids: list[str]) -> list[str]:
    """What is wrong with ``ids`` as requests to retry: one line per id that names no request or
    a request that is not Failed (only Failed requests are built again)."""
    from cdrflow.reports import requests

    wrong = []
    with engine.connect() as conn:
        for ident in ids:
            found = requests.get(conn, ident, None, every_account=True)
            if found is None:
                wrong.append(f"Retry failed requests: no report request has id {ident}")
            elif found.status != requests.FAILED:
                state = requests.STATUS_NAMES.get(found.status, str(found.status))
                wrong.append(
                    f"Retry failed requests: request {ident} is {state}, not failed: only failed ones are retried"
                )
    return wrong


def reports_dag() -> DAG:
    with DAG(
        dag_id="cdrflow_reports",
        description="Build the pending CDR report requests (seed 001) into the artifact store",
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(SWEEP, timezone="UTC"), assets=[REPORT_REQUESTED]),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=2,  # overlapping runs are safe: a request is claimed by one builder
        dagrun_timeout=timedelta(hours=12),
        tags=["cdrflow", "reports"],
        default_args=default_args(retries=2, retry_delay=timedelta(seconds=30)),
        params={
            "builders": Param(
                2,
                type=["null", "integer"],  # optional (no red star in the form): empty is 2
                minimum=1,
                maximum=16,
                title="Builders",
                description="Reports built at the same time (one task each), at most one per pending request",
            ),
            "retry_failed": Param(
                None,
                type=["null", "string"],
                title="Retry failed requests",
                description="Ids of Failed requests to build again (one per line, or comma-separated)",
            ),
        },
        doc_md=__doc__,
    ) as dag:

        @task
        def plan(params: dict | None = None) -> list[int]:
            import logging

            from cdrflow.reports import build
            from cdrflow.warehouse import db

            log = logging.getLogger("cdrflow.reports.build")
            params = params or {}
            engine = db.get_engine()
            retry: list[str] = []
            unretryable: list[str] = []
            try:
                retry = request_id_list(params.get("retry_failed"))
                unretryable = not_failed_requests(engine, retry)
            except CdrflowError as exc:
                unretryable = [one_line(exc)]
            if unretryable:  # the form names nothing to retry: a retry of the task would say the same
                from airflow.sdk.exceptions import AirflowFailException

                message = "nothing done: " + "; ".join(unretryable)
                log.error("%s", message)  # the first line of the task's log
                raise AirflowFailException(message)
            if retry:
                again = build.requeue_failed(engine, retry)
                log.info("requeued %d of %d failed request(s): %s", len(again), len(retry), ", ".join(again) or "-")
            build.give_up_abandoned(engine)
            pending = build.pending_count(engine)
            builders = min(pending, int(params.get("builders") or 2))
            log.info("%d pending report request(s): %d builder(s)", pending, builders)
            return list(range(1, builders + 1))

        @task(map_index_template="{{ builder_label }}", execution_timeout=timedelta(hours=8))
        def build(slot: int) -> dict:
            import logging

            from cdrflow.reports.build import build_pending
            from cdrflow.warehouse import db

            log = logging.getLogger("cdrflow.reports.build")
            context = get_current_context()
            context["builder_label"] = f"builder {slot}"  # type: ignore[typeddict-unknown-key]
            worker = f"{context['run_id']}/builder-{slot}"
            outcomes = build_pending(db.get_engine(), worker)
            for o in outcomes:
                (log.warning if o.status == "failed" else log.info)("%s", o.describe())
            return {
                "complete": [o.request_id for o in outcomes if o.status == "complete"],
                "failed": {o.request_id: o.reason for o in outcomes if o.status == "failed"},
                "discarded": [o.request_id for o in outcomes if o.status == "discarded"],
                "rows": sum(o.rows for o in outcomes),
                "bytes": sum(o.bytes for o in outcomes),
            }

        @task
        def summary(results) -> dict:
            import logging

            total: dict[str, Any] = {"complete": [], "failed": {}, "discarded": [], "rows": 0, "bytes": 0}
            for r in results:
                total["complete"] += r["complete"]
                total["failed"].update(r["failed"])
                total["discarded"] += r["discarded"]
                total["rows"] += r["rows"]
                total["bytes"] += r["bytes"]
            logging.getLogger("cdrflow.reports.build").info(
                "%d report(s) complete (%d rows, %d bytes), %d failed, %d deleted while building",
                len(total["complete"]),
                total["rows"],
                total["bytes"],
                len(total["failed"]),
                len(total["discarded"]),
            )
            return total

        summary(build.expand(slot=plan()))
    return dag


def housekeeping_dag() -> DAG:
    with DAG(
        dag_id="cdrflow_reports_housekeeping",
        description="Delete expired CDR reports from the artifact store; their requests become Expired",
        schedule=CronTriggerTimetable(HOUSEKEEPING, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["cdrflow", "reports", "housekeeping"],
        default_args=default_args(retries=2, retry_delay=timedelta(minutes=5)),
        doc_md=__doc__,
    ) as dag:

        @task
        def expire() -> dict:
            import logging

            from cdrflow.reports import housekeeping
            from cdrflow.warehouse import db

            log = logging.getLogger("cdrflow.reports.housekeeping")
            done = housekeeping.run(db.get_engine())
            log.info("%s", done.describe())
            if done.problems:  # the others are done; this run shows red and is retried
                raise CdrflowError(done.describe())
            return {"expired": done.expired, "files_deleted": done.files_deleted, "parts_deleted": done.parts_deleted}

        expire()
    return dag
