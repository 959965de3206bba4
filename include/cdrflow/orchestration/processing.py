"""The work of ``cdrflow_process``'s tasks, as functions the DAG file calls (the DAG file only
wires them): ``claim`` checks the form, repairs what a dead worker left (housekeeping) and takes
the files, ``process`` loads one batch,
``report`` sums the run up, marks it for attention (:mod:`cdrflow.orchestration.attention`) and,
when files ended failed or rejected, sends one notification (:mod:`cdrflow.orchestration.notify`).

Everything an operator must read is logged with :mod:`logging` (a line printed after the last
log call lands in the collapsed "Post Execute" group of Airflow's log view), and what refuses
the form or fails the run is the first line of its task's log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import Engine

from cdrflow.config.errors import CdrflowError, one_line
from cdrflow.intake import claims, housekeeping
from cdrflow.intake.rawstore import RawStore
from cdrflow.orchestration import attention, notify, quiet_logs
from cdrflow.orchestration.params import file_id_list
from cdrflow.orchestration.process_request import Plan, Request, plan

log = logging.getLogger("cdrflow.processing")


def refuse(message: str) -> AirflowFailException:
    """Log ``message`` as an error (the first line the operator reads) and return the exception
    that fails the task without a retry (the same input would be refused again)."""
    log.error("%s", message)
    return AirflowFailException(message)


def checked_request(engine: Engine, params: dict | None) -> tuple[Request, Plan]:
    """The form's values, parsed and checked against the warehouse; anything that names nothing
    fails the task with one line (see :mod:`cdrflow.orchestration.process_request`)."""
    try:
        request = Request.from_params(params)
        with engine.connect() as conn:
            return request, plan(conn, request)
    except CdrflowError as exc:
        raise refuse(f"nothing done: {one_line(exc)}") from None


def claim_files(engine: Engine, run_id: str, params: dict | None, store: RawStore | None = None) -> list[list[int]]:
    """Check the form, repair what a dead worker left (:mod:`cdrflow.intake.housekeeping`: expired
    claims, files stranded in processing, partial uploads of ``store``), put the named files back
    to received, claim the run's files and cut them into batches.

    Housekeeping used to be a task of its own. It runs here, before the claim, so that the files
    it frees are claimed by this very run, and a task process (1-2 s to start) is saved between
    a file's arrival and its load. The form is checked first: what refuses it, or what it asks
    for, is the first line of the log, and a refused run repairs nothing (the next run does)."""
    request, planned = checked_request(engine, params)
    if planned.said:  # what the operator asked for: the first line, as a refusal would be
        log.info("asked: %s (run %s)", "; ".join(planned.said), run_id)
    housekeeping.run(engine, store)  # logs each repair ("housekeeping: nothing to repair")
    ids: list[int] | None = None
    if request.names_files:
        ids = claims.requeue(engine, planned.rerun, f"operator re-run requested (run {run_id})")
        busy = sorted(set(planned.rerun) - set(ids))
        if busy:
            log.warning("files %s are being processed by another run right now: not re-run", busy)
        log.info("re-run requested for %s: %d waiting to be processed", planned.rerun, len(ids))
        if not ids:
            return []
    claimed = claims.claim(engine, run_id, carrier=request.carrier, file_ids=ids)
    batches = claims.batches(claimed, max_files=request.files_per_batch)
    log.info(
        "claimed %d file(s), %s bytes, in %d batch(es)", len(claimed), f"{sum(c.size for c in claimed):,}", len(batches)
    )
    return batches


def process_files(engine: Engine, store: RawStore, file_ids: list[int], run_id: str, params: dict | None) -> dict:
    """Load one batch; the summary (counts, and the files that need attention) goes to
    ``report``. A file that could not be processed at all (it stays received) fails the task
    after the others are done, so the retry takes it again."""
    from cdrflow.loading.batches import process_batch

    quiet_logs.quiet()  # again: this task imports Great Expectations, whatever its process did before
    accept = set(file_id_list((params or {}).get("accept_file_ids"), "Accept file ids"))
    outcome = process_batch(
        engine,
        store,
        file_ids,
        run_id=run_id,
        progress=logging.getLogger("cdrflow.loading.batches").info,
        accept=accept & set(file_ids),
        accepted_by=f"the processing run {run_id} (accept_file_ids)",
    )
    if outcome.errors:
        raise CdrflowError(
            f"{len(outcome.errors)} of {len(file_ids)} file(s) could not be processed: "
            + "; ".join(f"file {k}: {v}" for k, v in outcome.errors.items())
        )
    return {**outcome.summary(), **attention.batch_notes(outcome)}


def report_run(engine: Engine, run_id: str, summaries: Iterable[dict | None]) -> dict:
    """Log the run's summary first; with ``CDRFLOW_ATTENTION=fail`` (the default) fail the
    task when files ended failed or rejected."""
    how, complaint = attention.mode()
    summary = attention.summarise(engine, run_id, summaries)
    text = "\n".join(summary.lines(how))
    if not summary.needs_attention:
        log.info("%s", text)
    elif how == "warn":
        log.warning("%s", text)
    else:
        log.error("%s", text)
    if complaint:
        log.warning("%s", complaint)
    if summary.needs_attention:  # in both modes: one notification per run (a mail server down fails nothing)
        notify.send_logged(summary.message(how), _task_context())
    if summary.needs_attention and how == "fail":
        raise AirflowFailException(summary.headline())
    return summary.as_dict()


def _task_context() -> dict:
    """The running task's context (what a notifier's templates may use), or none outside a task."""
    from airflow.sdk import get_current_context

    try:
        return dict(get_current_context())
    except RuntimeError:
        return {}
