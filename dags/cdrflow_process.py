"""Airflow DAG: parse, validate and load the received CDR files into the warehouse.

Runs when a collector or ``cdrflow_register_folder`` registered new files (asset
``cdrflow_files_received``) and every five minutes as a sweep.

- ``claim`` checks the form (below), repairs what a dead worker left (housekeeping: expired
  claims, files stranded in ``processing``, partial uploads in the raw store), then takes the
  received files for this run (``FOR UPDATE SKIP LOCKED``: two overlapping runs never share a
  file) and cuts them into batches. (Housekeeping was a task of its own: one task process more
  between a file's arrival and its load, for nothing an operator needs.)
- ``process`` runs once per batch (dynamic task mapping), loading each file in its own
  transaction and renewing its claims every 30 seconds.
- ``report`` logs the run's summary as the first thing in its log: files by status, each failed
  or rejected file with its reason, the top rejection reasons, how to see each file (``cdrflow
  file ID``). When files ended failed or rejected, the run **ends failed** (red), or, with
  ``CDRFLOW_ATTENTION=warn``, successful with the summary as a warning.

**Trigger DAG w/ config** (every field may stay empty: then every received file is loaded):

- **Reprocess file ids**: ``3, 4, 10-12``; loaded, failed or rejected files go back to received
  and are loaded again, replacing their earlier calls.
- **Accept file ids**: failed files to load anyway, over their rejection threshold, their
  quarantine kept; each file's log names this run.
- **Only this carrier**: only that carrier's files (a choice from the carrier file).
- **Re-run this day**: that day's files of the chosen carrier (every carrier's when none is
  chosen): delivered that day or holding calls of it, in the carrier's time zone.

A carrier the warehouse does not know, a file id no file has, a duplicate's id or a day without
files fails the run at ``claim`` with one line that says so; nothing is re-run then.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from cdrflow.orchestration.assets import FILES_RECEIVED
from cdrflow.orchestration.defaults import START_DATE, default_args
from cdrflow.orchestration.params import carrier_param, day_param, file_ids_param


@dag(
    dag_id="cdrflow_process",
    description="Load the received CDR files: parse, validate, load; re-run files, a carrier's day",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/5 * * * *", timezone="UTC"), assets=[FILES_RECEIVED]
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=4,  # overlapping runs are safe: claims never overlap
    dagrun_timeout=timedelta(hours=6),
    tags=["cdrflow", "processing"],
    default_args=default_args(),
    params={
        "file_ids": file_ids_param(
            "Reprocess file ids", "Loaded, failed or rejected files to load again; empty: every received file"
        ),
        "accept_file_ids": file_ids_param(
            "Accept file ids", "Failed files to load anyway, over their rejection threshold, their quarantine kept"
        ),
        "carrier": carrier_param(),
        "day": day_param(
            "Re-run this day",
            "That day's files of the carrier above (of every carrier when none is chosen): delivered that day "
            "or holding calls of it, in the carrier's time zone",
        ),
        "files_per_batch": Param(  # optional (no red star in the form): empty is 500
            500, type=["null", "integer"], minimum=1, maximum=10_000, title="Files per processing task"
        ),
    },
    doc_md=__doc__,
)
def cdrflow_process():
    @task
    def claim(params: dict | None = None) -> list[list[int]]:
        from cdrflow.config import settings
        from cdrflow.intake.rawstore import RawStore
        from cdrflow.orchestration.processing import claim_files
        from cdrflow.warehouse import db

        store = RawStore(settings.raw_store_url())  # housekeeping removes its stale partial uploads
        return claim_files(db.get_engine(), get_current_context()["run_id"], params, store)

    @task(map_index_template="{{ batch_label }}", execution_timeout=timedelta(hours=4))
    def process(file_ids: list[int]) -> dict:
        from cdrflow.config import settings
        from cdrflow.intake.rawstore import RawStore
        from cdrflow.orchestration.processing import process_files
        from cdrflow.warehouse import db

        context = get_current_context()
        context["batch_label"] = f"files {file_ids[0]}..{file_ids[-1]} ({len(file_ids)})"  # type: ignore[typeddict-unknown-key]  # for map_index_template
        store = RawStore(settings.raw_store_url())
        return process_files(db.get_engine(), store, file_ids, context["run_id"], context.get("params"))

    @task  # a run that needs attention fails with AirflowFailException: never retried
    def report(summaries) -> dict:
        from cdrflow.orchestration.processing import report_run
        from cdrflow.warehouse import db

        # by index: iterating the lazy sequence probes one past its end and logs "XCom not found"
        # as an error, which would come before the summary
        batches = [summaries[i] for i in range(len(summaries))]
        return report_run(db.get_engine(), get_current_context()["run_id"], batches)

    report(process.expand(file_ids=claim()))


cdrflow_process()
