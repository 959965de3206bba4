"""The shape of every collector DAG (one per source kind: mailbox, sftp, ftp, bucket).

    plan ──> collect (mapped: one task per configured source)

- ``plan`` loads the carrier file (``include/carriers.yaml``) into the warehouse and lists the
  sources of this kind: a source added to the file is collected on the next run, no DAG change.
- ``collect`` runs one source; a server that fails fails only its own mapped task (with a
  one-line reason), retried with exponential back-off, and the run ends failed (red in the UI).
  It logs one line per file. A file that cannot be read is skipped (left on the server); a raw
  store that cannot take bytes (missing, unwritable, full, S3 refusing or no credentials) fails
  the task with one line naming the store: nothing is registered or removed from the server
  until it is fixed.
- A ``collect`` that registered at least one new file updates the ``cdrflow_files_received``
  asset itself (through the asset alias ``cdrflow_files_received_by_collectors``: an alias
  outlet emits an event only when the task adds one, so a poll that found nothing does not wake
  the processing DAG). Each source announces its own files as soon as it is done: the files of a
  source that worked are processed even when another source failed.

There used to be two more tasks, ``announce`` (the asset event) and ``check`` (failing the run
when a source failed). They bought nothing an operator needs (a failed ``collect`` is a leaf, so
it already fails the run) and cost a task process each (1-2 s here) between a file's arrival and
its load.

Schedules: every minute by default (``CDRFLOW_COLLECT_EVERY_MINUTES`` overrides), so a file that
lands is registered within a minute plus the source's settle time; the asset starts
processing at once. The bucket collector also runs as soon as the triggerer sees a new file in
an upload bucket or drop folder (asset ``cdrflow_bucket_files``, watched every
``CDRFLOW_WATCH_SECONDS``: :mod:`cdrflow.orchestration.source_watch`), and the mailbox collector
as soon as an IMAP server that has IDLE says a mailbox got mail (asset ``cdrflow_mailbox_mail``:
:mod:`cdrflow.orchestration.mail_watch`); their one-minute timetable stays as the fallback.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, AssetAlias, AssetOrTimeSchedule, DeltaTriggerTimetable, get_current_context, task

from cdrflow.orchestration.assets import FILES_RECEIVED
from cdrflow.orchestration.defaults import START_DATE, collector_args
from cdrflow.orchestration.mail_watch import imap_idle_enabled, mailbox_mail_asset
from cdrflow.orchestration.source_watch import bucket_files_asset, watch_seconds

# on the collect queue, outside the warehouse pool (cdrflow.orchestration.defaults)
DEFAULT_ARGS = collector_args(retries=3, retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=10))

# A collect task's outlet: events added to it are events of FILES_RECEIVED (what starts
# cdrflow_process); unlike a plain asset outlet, nothing is emitted unless the task adds it.
FILES_RECEIVED_BY_COLLECTORS = AssetAlias(name="cdrflow_files_received_by_collectors", group="cdrflow")

_TITLES = {
    "mailbox": "carriers' mailboxes (IMAP)",
    "sftp": "carriers' SFTP servers",
    "ftp": "carriers' FTP and FTPS servers",
    "bucket": "upload buckets and drop folders",
}


def every() -> timedelta:
    return timedelta(minutes=float(os.environ.get("CDRFLOW_COLLECT_EVERY_MINUTES", "1")))


def schedule(kind: str) -> DeltaTriggerTimetable | AssetOrTimeSchedule:
    """Every minute; buckets and folders also at once when the watcher sees a new file,
    mailboxes when an IMAP server with IDLE says new mail arrived (``CDRFLOW_IMAP_IDLE=0`` turns
    that off, ``CDRFLOW_WATCH_SECONDS=0`` both)."""
    if kind == "bucket" and watch_seconds():
        asset = bucket_files_asset()
    elif kind == "mailbox" and imap_idle_enabled():
        asset = mailbox_mail_asset()
    else:
        return DeltaTriggerTimetable(every())
    return AssetOrTimeSchedule(timetable=DeltaTriggerTimetable(every()), assets=[asset])


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

        @task(map_index_template="{{ source_label }}", outlets=[FILES_RECEIVED_BY_COLLECTORS])
        def collect(entry: dict) -> dict:
            import logging

            from cdrflow.config import settings
            from cdrflow.intake.rawstore import RawStore
            from cdrflow.sources import run
            from cdrflow.warehouse import db

            context = get_current_context()
            context["source_label"] = entry["carrier"]  # type: ignore[typeddict-unknown-key]  # for map_index_template
            found = run.collect(
                db.get_engine(),
                RawStore(settings.raw_store_url()),
                entry["carrier"],
                run.source_from_dict(entry["source"]),
            )
            new = [c for c in found if c.is_new]
            log = logging.getLogger("cdrflow.sources")
            if new:
                # emitted when the task succeeds, like any outlet's event (an attempt that fails
                # after registering files announces nothing: processing's 5-minute sweep takes them)
                ids = [c.file_id for c in new]
                extra: dict[str, Any] = {"carrier": entry["carrier"], "new": len(ids), "file_ids": ids[:100]}
                context["outlet_events"][FILES_RECEIVED_BY_COLLECTORS].add(FILES_RECEIVED, extra=extra)
                shown = ", ".join(map(str, ids[:20])) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
                log.info("%d new file(s) registered (ids %s): %s updated", len(ids), shown, FILES_RECEIVED.name)
            else:
                log.info("no new file registered: processing not triggered")
            return {"carrier": entry["carrier"], "new": len(new), "files": [c.as_dict() for c in found]}

        collect.expand(entry=plan())
    return dag
