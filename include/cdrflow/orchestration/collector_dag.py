"""The shape of every collector DAG (one per source kind: mailbox, sftp, ftp, bucket).

    plan ──> collect (mapped: one task per configured source) ──> announce ──> check

- ``plan`` loads the carrier file (``include/carriers.yaml``) into the warehouse and lists the
  sources of this kind: a source added to the file is collected on the next run, no DAG change.
- ``collect`` runs one source; a server that fails fails only its own mapped task (with a
  one-line reason), retried with exponential back-off. It logs one line per file. A file that
  cannot be read is skipped (left on the server); a raw store that cannot take bytes (missing,
  unwritable, full, S3 refusing or no credentials) fails the task with one line naming the store:
  nothing is registered or removed from the server until it is fixed.
- ``announce`` updates the ``cdrflow_files_received`` asset when any source registered a new
  file (it runs even when a source failed, so the files that did arrive get processed); it is
  skipped when nothing new came, so the processing DAG is not woken for nothing.
- ``check`` fails the run when a source failed, so the run shows red in the UI.

Schedules: every minute by default (``CDRFLOW_COLLECT_EVERY_MINUTES`` overrides), so a file that
lands is registered within a minute plus the source's settle time; the asset starts
processing at once. The bucket collector also runs as soon as the triggerer sees a new file in
an upload bucket or drop folder (asset ``cdrflow_bucket_files``, watched every
``CDRFLOW_WATCH_SECONDS``: :mod:`cdrflow.orchestration.source_watch`); its one-minute timetable
stays as the fallback.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, DeltaTriggerTimetable, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from cdrflow.orchestration.assets import FILES_RECEIVED
from cdrflow.orchestration.defaults import START_DATE, collector_args
from cdrflow.orchestration.source_watch import bucket_files_asset, watch_seconds

# on the collect queue, outside the warehouse pool (cdrflow.orchestration.defaults)
DEFAULT_ARGS = collector_args(retries=3, retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=10))

_TITLES = {
    "mailbox": "carriers' mailboxes (IMAP)",
    "sftp": "carriers' SFTP servers",
    "ftp": "carriers' FTP and FTPS servers",
    "bucket": "upload buckets and drop folders",
}


def every() -> timedelta:
    return timedelta(minutes=float(os.environ.get("CDRFLOW_COLLECT_EVERY_MINUTES", "1")))


def schedule(kind: str) -> DeltaTriggerTimetable | AssetOrTimeSchedule:
    """Every minute; for buckets and folders also at once when the watcher sees a new file
    (unless ``CDRFLOW_WATCH_SECONDS=0``)."""
    if kind != "bucket" or not watch_seconds():
        return DeltaTriggerTimetable(every())
    return AssetOrTimeSchedule(timetable=DeltaTriggerTimetable(every()), assets=[bucket_files_asset()])


def collector_dag(kind: str) -> DAG:
    """The collector DAG for source ``kind``."""
    with DAG(
        dag_id=f"cdrflow_collect_{kind}",
        description=f"Register new CDR files from the {_TITLES[kind]}",
        schedule=schedule(kind),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # a slow server must not pile up runs
        dagrun_timeout=timedelta(hours=1),
        tags=["cdrflow", "collector", kind],
        default_args=DEFAULT_ARGS,
        doc_md=__doc__,
    ) as dag:

        @task
        def plan() -> list[dict]:
            from cdrflow.sources.run import planned
            from cdrflow.warehouse import db

            sources = planned(db.get_engine(), kind)
            print(f"{len(sources)} {kind} source(s) configured: " + ", ".join(f"{s['carrier']}" for s in sources))
            return sources

        @task(map_index_template="{{ source_label }}")
        def collect(entry: dict) -> dict:
            from cdrflow.config import settings
            from cdrflow.intake.rawstore import RawStore
            from cdrflow.sources import run
            from cdrflow.warehouse import db

            get_current_context()["source_label"] = entry["carrier"]  # type: ignore[typeddict-unknown-key]  # for map_index_template
            found = run.collect(
                db.get_engine(),
                RawStore(settings.raw_store_url()),
                entry["carrier"],
                run.source_from_dict(entry["source"]),
            )
            return {
                "carrier": entry["carrier"],
                "new": sum(c.is_new for c in found),
                "files": [c.as_dict() for c in found],
            }

        @task(outlets=[FILES_RECEIVED], trigger_rule="all_done")
        def announce(results) -> int:
            new = sum(r["new"] for r in results if r)  # a failed source has no result
            if not new:
                raise AirflowSkipException("no new file registered: processing not triggered")
            print(f"{new} new file(s) registered: {FILES_RECEIVED.name} updated")
            return new

        @task
        def check(results) -> None:
            print("every source collected: " + ", ".join(f"{r['carrier']} {r['new']} new" for r in results))

        collected = collect.expand(entry=plan())
        announce(collected)
        check(collected)
    return dag
