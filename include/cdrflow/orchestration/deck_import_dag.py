"""The ``cdrflow_import_decks`` DAG: rate decks dropped into a folder or bucket become deck versions.

    import_decks ──> check

- ``import_decks`` handles every drop waiting in the deck drop location (``CDRFLOW_DECK_DROP``,
  default ``<state>/decks-inbox``; a folder or ``s3://[conn_id@]bucket/prefix``) with
  :func:`cdrflow.billing.deck_drop.run`: each new deck is imported once, and what changed is
  logged (added, removed, price up, price down) as ``cdrflow rates import`` prints it. A bad deck is
  refused whole, its problems (with line numbers) logged at ERROR and written beside it in
  ``rejected/``; the other drops of the run are imported all the same.
- ``check`` fails the run when a drop was refused, could not be handled or not moved, so that run
  shows red in the UI with one line naming each; the next run, with nothing refused, is green.

Schedule: every 10 minutes (``CDRFLOW_DECK_IMPORT_EVERY_MINUTES`` overrides). Manual runs
(Trigger DAG w/ config): **Only this drop**: one drop's path under the drop location (e.g.
``retail/2026-11-01__november.csv``); a folder named there is imported without waiting for its
``.ready`` file.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, DeltaTriggerTimetable, Param, task

from cdrflow.orchestration.defaults import START_DATE, default_args

DAG_ID = "cdrflow_import_decks"
NOT_IMPORTED = ("refused", "failed")


def every() -> timedelta:
    return timedelta(minutes=float(os.environ.get("CDRFLOW_DECK_IMPORT_EVERY_MINUTES", "10")))


def _trouble(result: dict) -> str | None:
    """Why ``result`` turns the run red, or None."""
    if result["outcome"] == "refused":
        where = f"; see {result['kept_as']}.error.txt" if result["kept_as"] else ""
        return f"{result['name']} refused: {result['message']}{where}"
    if result["outcome"] == "failed":
        return f"{result['name']} failed (left in the drop): {result['message']}"
    if result["outcome"] in ("imported", "duplicate") and not result["kept_as"]:
        return f"{result['name']} {result['message']}"
    return None


def deck_import_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="Import rate decks dropped into the deck drop folder or bucket, each once",
        schedule=DeltaTriggerTimetable(every()),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # one import at a time; the advisory lock guards the rest
        dagrun_timeout=timedelta(hours=1),
        tags=["cdrflow", "billing", "rate decks"],
        default_args=default_args(retries=2, retry_delay=timedelta(minutes=1)),
        params={
            "path": Param(
                None,
                type=["null", "string"],
                title="Only this drop",
                description=(
                    "A drop's path under the deck drop location, e.g. retail/2026-11-01__november.csv "
                    "(a folder is then taken without its .ready file); empty: every drop waiting"
                ),
            ),
        },
        doc_md=__doc__,
    ) as dag:

        @task
        def import_decks(params: dict | None = None) -> list[dict]:
            import logging

            from airflow.sdk.exceptions import AirflowFailException

            from cdrflow.billing import deck_drop
            from cdrflow.billing.deck_drop_store import drop_url
            from cdrflow.config.errors import CdrflowError, one_line
            from cdrflow.warehouse import db

            only = ((params or {}).get("path") or "").strip() or None
            try:
                results = deck_drop.run(db.get_engine(), drop_url(), only)
            except CdrflowError as exc:
                if only:  # a path that names no drop: a retry would say the same
                    message = f"nothing done: Only this drop: {one_line(exc)}"
                    logging.getLogger("cdrflow.billing.deck_drop").error("%s", message)  # the log's first line
                    raise AirflowFailException(message) from exc
                raise
            return [r.as_dict() for r in results]

        @task(retries=1, retry_delay=timedelta(seconds=10))
        def check(results: list[dict]) -> None:
            import logging

            from airflow.sdk.exceptions import AirflowFailException

            troubles = [t for r in results if (t := _trouble(r))]
            if troubles:
                raise AirflowFailException(f"{len(troubles)} drop(s) not imported: " + "; ".join(troubles))
            done = [r for r in results if r["outcome"] != "waiting"]
            logging.getLogger("cdrflow.billing.deck_drop").info(
                "%d drop(s) handled, none refused; %d waiting for .ready", len(done), len(results) - len(done)
            )

        check(import_decks())  # type: ignore[arg-type]  # XComArg, resolved at run time
    return dag
