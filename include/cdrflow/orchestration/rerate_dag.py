"""The ``cdrflow_rerate`` DAG: an operator re-rates a closed period from a form.

    rerate ──> artifacts

Manual only (no schedule). The form: **Kind** (daily or monthly), **Period** (a day,
``2026-11-01``, for daily; a month, ``2026-11``, or any day of it, for monthly), **Only this
account** or **Only this carrier** (drop-downs of the account and carrier files; empty: every
charge of the period), **Deck version** (a ``rate_deck_versions.id``, as ``cdrflow rates list``
shows it; empty: the version in force at each call's start).

- ``rerate`` checks the form first (an unknown account or carrier, both at once, a period that is
  not one, a deck version that does not exist, a period with no closed billrun: the run fails at
  once with that one line, without a retry), then runs
  :func:`cdrflow.billing.rerate.rerate`, exactly what ``cdrflow bill rerate`` runs: a new
  billrun version of the period, the old one kept, the billing feed's reversals and new records
  appended. Its log says how many charges were replaced, the change per account (old total, new
  total, difference) and the destinations now sold below cost.
- ``artifacts`` writes the new version's invoice CSVs and summary to the artifact store, as the
  billing DAGs do.

A rerating that fails for good sends the billing "could not close" notification.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import DAG, Param, task

from cdrflow.orchestration import notify
from cdrflow.orchestration.defaults import START_DATE, default_args
from cdrflow.orchestration.notify import Message
from cdrflow.orchestration.params import account_param_all, carrier_param, day_value, month_value

DAG_ID = "cdrflow_rerate"
log = logging.getLogger("cdrflow.billing.rerate")


def request(params: dict | None) -> dict[str, Any]:
    """(kind, period, account, carrier, deck_version) from the form, each shape checked; a
    one-line :class:`CdrflowError` for anything else."""
    from cdrflow.config.errors import CdrflowError

    params = params or {}
    kind = (params.get("kind") or "").strip()
    if kind not in ("daily", "monthly"):
        raise CdrflowError(f"Kind: {kind or '(empty)'!r} is not daily or monthly")
    if kind == "monthly":
        period = month_value(params.get("period"), "Period")
    else:
        day = day_value(params.get("period"), "Period")
        period = day.isoformat() if day else None
    if period is None:
        wanted = "a day, 2026-11-01" if kind == "daily" else "a month, 2026-11"
        raise CdrflowError(f"Period: empty; a {kind} rerating needs {wanted}")
    account = (params.get("account") or "").strip() or None
    carrier = (params.get("carrier") or "").strip() or None
    if account and carrier:
        raise CdrflowError("Only this account and Only this carrier: choose one of them, or neither")
    raw_version = params.get("deck_version")
    deck_version = None
    if raw_version not in (None, ""):
        try:
            deck_version = int(str(raw_version).strip())
        except ValueError:
            raise CdrflowError(f"Deck version: {raw_version!r} is not a deck version id (a number)") from None
    return {"kind": kind, "period": period, "account": account, "carrier": carrier, "deck_version": deck_version}


def check_known(conn: Any, asked: dict[str, Any]) -> None:
    """The account, carrier and deck version the form names exist in the warehouse."""
    from sqlalchemy import text

    from cdrflow.config.errors import CdrflowError
    from cdrflow.warehouse import accounts

    if asked["account"] and accounts.get(conn, asked["account"]) is None:
        raise CdrflowError(
            f"Only this account: unknown account {asked['account']!r}: not in the accounts table "
            "(cdrflow accounts sync loads the account file)"
        )
    if (
        asked["carrier"]
        and not conn.execute(text("SELECT 1 FROM carriers WHERE code = :c"), {"c": asked["carrier"]}).first()
    ):
        raise CdrflowError(f"Only this carrier: unknown carrier {asked['carrier']!r}: not in the carriers table")
    if (
        asked["deck_version"] is not None
        and not conn.execute(
            text("SELECT 1 FROM rate_deck_versions WHERE id = :v"), {"v": asked["deck_version"]}
        ).first()
    ):
        raise CdrflowError(
            f"Deck version: no deck version has id {asked['deck_version']} (cdrflow rates list shows them)"
        )


def run_rerate(engine: Any, params: dict | None) -> dict[str, Any]:
    """The ``rerate`` task's work: the form checked, the period re-rated, the outcome logged."""
    from airflow.sdk.exceptions import AirflowFailException

    from cdrflow.billing.billrun import BillrunBusy
    from cdrflow.billing.rerate import rerate
    from cdrflow.config.errors import CdrflowError, one_line

    try:
        asked = request(params)
        with engine.connect() as conn:
            check_known(conn, asked)
        done = rerate(engine, **asked)
    except BillrunBusy:
        raise  # another run of the period holds its lock: the retry tries again
    except CdrflowError as exc:
        message = f"nothing done: {one_line(exc)}"
        log.error("%s", message)
        raise AirflowFailException(message) from None
    run = done.billrun
    log.info(
        "rerating of the %s period %s (%s): billrun %s version %s, %d charge(s) replaced (kept, no longer current)",
        asked["kind"],
        asked["period"],
        asked["account"] or (f"carrier {asked['carrier']}" if asked["carrier"] else "every charge"),
        run.id,
        run.version,
        done.replaced,
    )
    for c in done.changes:
        log.info("account %s: %s %s -> %s (difference %s)", c.account_id or "-", c.currency, c.old, c.new, c.difference)
    for d in done.below_cost:
        log.warning(
            "sold below cost: %s (%s) %s: %s calls, sell %s, buy %s, margin %s",
            d["destination"],
            d["call_type"],
            d["currency"],
            d["calls"],
            d["sell_total"],
            d["buy_total"],
            d["margin"],
        )
    return {
        "billrun_id": run.id,
        "version": run.version,
        "replaced": done.replaced,
        "changes": [
            {"account": c.account_id, "currency": c.currency, "old": str(c.old), "new": str(c.new)}
            for c in done.changes
        ],
        "below_cost": len(done.below_cost),
    }


def failure_message(context: Any) -> Message:
    """The notification of a rerating that failed for good: what was asked, the task, its error."""
    from cdrflow.config.errors import one_line

    ti, error = context.get("ti"), context.get("exception")
    params = context.get("params") or {}
    asked = ", ".join(
        f"{k} {params[k]}" for k in ("kind", "period", "account", "carrier", "deck_version") if params.get(k)
    )
    why = one_line(error) if isinstance(error, BaseException) else str(error or "no error recorded")
    task_id = getattr(ti, "task_id", "?")
    lines = [f"the rerating ({asked or 'no params'}) could not close: task {task_id} failed.", f"error: {why}"]
    if log_url := getattr(ti, "log_url", None):
        lines.append(f"log: {log_url}")
    return Message(
        kind="billing",
        subject=f"cdrflow: the rerating ({asked}) could not close: {task_id} failed",
        body="\n".join(lines),
        facts={**{k: params.get(k) for k in ("kind", "period", "account", "carrier")}, "task": task_id, "error": why},
    )


def _notify_failure(context: Any) -> None:
    notify.send_logged(failure_message(context), context)


def rerate_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="Re-rate a closed billing period (a new billrun version; the old one kept)",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=["cdrflow", "billing"],
        default_args=default_args(retries=1, on_failure_callback=_notify_failure),
        params={
            "kind": Param("daily", type="string", enum=["daily", "monthly"], title="Kind"),
            "period": Param(  # required: a rerating names its period
                type="string",
                minLength=1,
                pattern=r"^\d{4}-(0[1-9]|1[0-2])(-\d{2})?$",
                title="Period",
                description="A day (2026-11-01) for daily; a month (2026-11, or any day of it) for monthly",
            ),
            "account": account_param_all(),
            "carrier": carrier_param(description="Only this carrier's charges; empty: every carrier"),
            "deck_version": Param(  # text, so that the cdrflow page's form (strings) can send it too
                None,
                type=["null", "string"],
                pattern=r"^\s*[0-9]*\s*$",
                title="Deck version",
                description="Rate with this deck version (its id, from cdrflow rates list); "
                "empty: the version in force at each call's start",
            ),
        },
        doc_md=__doc__,
    ) as dag:

        @task
        def rerate(params: dict | None = None) -> dict:
            from cdrflow.warehouse import db

            return run_rerate(db.get_engine(), params)

        @task
        def artifacts(result: dict) -> dict:
            from cdrflow.billing.artifacts import write_artifacts
            from cdrflow.warehouse import db

            written = write_artifacts(db.get_engine(), result["billrun_id"])
            for a in written:
                log.info("%s %s: %s (%d bytes, sha1 %s)", a.kind, a.account_id or "", a.uri, a.bytes, a.sha1)
            return {"billrun_id": result["billrun_id"], "summary": written[0].uri, "invoices": len(written) - 1}

        artifacts(rerate())  # type: ignore[arg-type]  # XComArgs, resolved at run time
    return dag
