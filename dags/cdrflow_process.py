"""Airflow DAG: parse, validate and load the received CDR files into the warehouse.

Runs when a collector registered new files (asset ``cdrflow_files_received``) and every five
minutes as a sweep. ``housekeeping`` first repairs what a dead worker left (expired claims,
files stranded in ``processing``, partial uploads in the raw store). ``claim`` takes the received files for this run (``FOR UPDATE SKIP
LOCKED``: two overlapping runs never share a file) and cuts them into batches; ``process`` runs
once per batch (dynamic task mapping: a day of thousands of small files is a handful of
tasks), loading each file in its own transaction and renewing its claims every 30 seconds (a
claim not renewed for five minutes belongs to a dead run and is taken again); ``report`` sums up.

Manual runs (Trigger DAG w/ config): reprocess given file ids (loaded, failed or rejected files
go back to received and are loaded again, replacing their earlier calls), or only one carrier.
**Accept file ids**: files that failed their carrier's rejection threshold (or a check of
severity ``fail``) are loaded anyway, their quarantine kept; each file's log names this run.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from cdrflow.orchestration.assets import FILES_RECEIVED
from cdrflow.orchestration.defaults import START_DATE, default_args


@dag(
    dag_id="cdrflow_process",
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
        "file_ids": Param(
            [],
            type="array",
            items={"type": "integer"},
            title="Reprocess file ids",
            description="Loaded, failed or rejected files to load again; empty: every received file",
        ),
        "accept_file_ids": Param(
            [],
            type=["array", "string", "null"],
            items={"type": ["integer", "string"]},
            title="Accept file ids",
            description=(
                "Failed files to load anyway, over their rejection threshold, with their quarantine kept "
                "(one id per line, or 3, 4)"
            ),
        ),
        "carrier": Param(
            None, type=["null", "string"], title="Only this carrier", description="Carrier code; empty: all carriers"
        ),
        "files_per_batch": Param(500, type="integer", minimum=1, maximum=10_000, title="Files per processing task"),
    },
    doc_md=__doc__,
)
def cdrflow_process():
    @task
    def housekeeping() -> dict:
        from cdrflow.config import settings
        from cdrflow.intake import housekeeping
        from cdrflow.intake.rawstore import RawStore
        from cdrflow.warehouse import db

        repairs = housekeeping.run(db.get_engine(), RawStore(settings.raw_store_url()))  # logs each repair
        return {
            "expired_claims": len(repairs.expired_claims),
            "requeued": repairs.requeued,
            "parts_deleted": len(repairs.parts_deleted),
            "problems": repairs.problems,
        }

    @task
    def claim(params: dict | None = None) -> list[list[int]]:
        from cdrflow.intake import claims
        from cdrflow.orchestration.params import file_id_list
        from cdrflow.warehouse import db

        engine = db.get_engine()
        run_id = get_current_context()["run_id"]
        accept = file_id_list(params.get("accept_file_ids"), "accept_file_ids")
        ids = file_id_list(params.get("file_ids"), "file_ids")
        ids += [i for i in accept if i not in ids]  # an accepted file is re-run too
        if accept:
            print(f"accepting {accept} over their rejection threshold (run {run_id})")
        if ids:
            waiting = claims.requeue(engine, ids, f"operator re-run requested (run {run_id})")
            print(f"re-run requested for {ids}: {waiting} waiting to be processed")
            if not waiting:
                return []
        claimed = claims.claim(engine, run_id, carrier=params.get("carrier") or None, file_ids=ids or None)
        batches = claims.batches(claimed, max_files=params.get("files_per_batch") or 500)
        print(f"claimed {len(claimed)} file(s), {sum(c.size for c in claimed):,} bytes, in {len(batches)} batch(es)")
        return batches

    @task(map_index_template="{{ batch_label }}", execution_timeout=timedelta(hours=4))
    def process(file_ids: list[int]) -> dict:
        import logging

        from cdrflow.config import settings
        from cdrflow.config.errors import CdrflowError
        from cdrflow.intake.rawstore import RawStore
        from cdrflow.loading.batches import process_batch
        from cdrflow.orchestration.params import file_id_list
        from cdrflow.warehouse import db

        context = get_current_context()
        context["batch_label"] = f"files {file_ids[0]}..{file_ids[-1]} ({len(file_ids)})"
        log = logging.getLogger("cdrflow.loading.batches")
        run_id = context["run_id"]
        accept = set(file_id_list((context.get("params") or {}).get("accept_file_ids"), "accept_file_ids"))
        outcome = process_batch(
            db.get_engine(),
            RawStore(settings.raw_store_url()),
            file_ids,
            run_id=run_id,
            progress=log.info,
            accept=accept & set(file_ids),
            accepted_by=f"the processing run {run_id} (accept_file_ids)",
        )
        summary = outcome.summary()
        if outcome.errors:  # the other files are loaded; these stay received for the retry
            raise CdrflowError(
                f"{len(outcome.errors)} of {len(file_ids)} file(s) could not be processed: "
                + "; ".join(f"file {k}: {v}" for k, v in outcome.errors.items())
            )
        return summary

    @task
    def report(summaries) -> dict:
        total = {
            "files": 0,
            "calls_loaded": 0,
            "calls_flagged": 0,
            "rows_rejected": 0,
            "duplicates": 0,
            "by_status": {},
        }
        for s in summaries:
            for key in ("files", "calls_loaded", "calls_flagged", "rows_rejected", "duplicates"):
                total[key] += s.get(key, 0)
            for status, n in s["by_status"].items():
                total["by_status"][status] = total["by_status"].get(status, 0) + n
        print(
            f"{total['files']} file(s): {total['by_status']}; {total['calls_loaded']:,} calls loaded "
            f"({total['calls_flagged']:,} flagged), "
            f"{total['rows_rejected']:,} rows quarantined, {total['duplicates']:,} duplicate calls"
        )
        return total

    batches = claim()
    housekeeping() >> batches
    report(process.expand(file_ids=batches))


cdrflow_process()
