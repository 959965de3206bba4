"""The shape of both billing DAGs (``cdrflow_billing_daily``, ``cdrflow_billing_monthly``).

    completeness (sensor, reschedule) ──> billrun ──> artifacts

- **Schedule**: at midnight UTC plus the grace for late files (``CDRFLOW_BILLING_GRACE_HOURS``,
  default 2): every day at 02:00 UTC for the previous day, on the 1st at 02:00 UTC for the
  previous month. Read when the DAG file is parsed.
- ``completeness`` waits, in ``mode="reschedule"`` (between pokes it holds no worker slot; every
  ``CDRFLOW_BILLING_POKE_MINUTES``, default 10), until the period has ended in the time zone of
  every account of the scope plus the grace, and every carrier with ``delivery: daily`` has
  delivered each of its days (a file registered, or calls in ``call_days``). A carrier still
  missing at the deadline (``CDRFLOW_BILLING_DEADLINE_HOURS`` later, default 6) is named in the
  log and the billing goes on without it (:mod:`cdrflow.billing.completeness`).
- ``billrun`` charges the period (:func:`cdrflow.billing.billrun.run_billrun`; a re-run charges
  only what is new: a late file's calls become the next version) and keeps the missing
  carriers in ``billruns.missing_carriers``.
- ``artifacts`` writes the invoice CSV of each account and the billrun summary to the artifact
  store (``CDRFLOW_ARTIFACT_STORE``) and logs where they are.
- **Could not close**: a task that fails for good (the completeness check timed out, the billrun
  or the artifacts raised, retries spent) sends one notification naming the period, the scope,
  the task and its error (``on_failure_callback``; :mod:`cdrflow.orchestration.notify`).

Manual runs (Trigger DAG w/ config): **Day** (daily: a date picker) or **Month** (monthly:
``2026-11``, any day of it, or one of the last twelve months offered; empty: the period before
the run, as scheduled) and **Only this account** (a choice of the accounts of the DAG's cycle in
the account file, ``include/accounts.yaml`` or ``CDRFLOW_ACCOUNTS_FILE``; empty: every account
of the cycle and calls of no account).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, Param, PokeReturnValue, get_current_context, task

from cdrflow.billing.completeness import cron, deadline, grace, poke_interval
from cdrflow.orchestration import notify
from cdrflow.orchestration.defaults import START_DATE, default_args
from cdrflow.orchestration.notify import Message
from cdrflow.orchestration.params import account_param, day_param, day_value, month_param, month_value


def _params(params: dict | None, kind: str) -> tuple[str | None, str | None]:
    """(period, account) from the form: a daily period as ``2026-11-01``, a monthly one as
    ``2026-11`` (the form also takes any day of the month); empty values are None."""
    params = params or {}
    raw = params.get("period")
    if kind == "monthly":
        period = month_value(raw, "Month")
    else:
        day = day_value(raw, "Day")
        period = day.isoformat() if day else None
    account = (params.get("account") or "").strip() or None
    return period, account


def _checked(params: dict | None, kind: str) -> tuple[str | None, str | None]:
    """The run's start check: (period, account) from the form, the account known to the
    warehouse and billed on ``kind``. Input that names nothing fails the task at once, without
    a retry (the same form would be refused again), its one line first in the log."""
    import logging

    from airflow.sdk.exceptions import AirflowFailException

    from cdrflow.config.errors import CdrflowError, one_line
    from cdrflow.warehouse import accounts, db

    try:
        period, account = _params(params, kind)
        if account is not None:
            with db.get_engine().connect() as conn:
                found = accounts.get(conn, account)
            if found is None:
                raise CdrflowError(
                    f"Only this account: unknown account {account!r}: not in the accounts table "
                    "(cdrflow accounts sync loads the account file)"
                )
            if found.cycle != kind:
                raise CdrflowError(
                    f"Only this account: account {account} is billed {found.cycle}: "
                    f"trigger cdrflow_billing_{found.cycle} for it"
                )
    except CdrflowError as exc:
        message = f"nothing done: {one_line(exc)}"
        logging.getLogger("cdrflow.billing.completeness").error("%s", message)
        raise AirflowFailException(message) from None
    return period, account


def _period_param(kind: str) -> Param:
    if kind == "daily":
        return day_param("Day", "The day to bill; empty: the day before this run, as the schedule does")
    this_month = datetime.now(UTC).date().replace(day=1)
    recent = []
    for _ in range(12):
        this_month = (this_month - timedelta(days=1)).replace(day=1)
        recent.append(f"{this_month:%Y-%m}")
    return month_param(
        "Month", "The month to bill, e.g. 2026-11 (or any day of it); empty: the month before this run", recent
    )


def failure_message(kind: str, context: Any) -> Message:
    """The notification of a billing run that could not close: which period and scope, the task
    that failed (``completeness`` timed out, ``billrun`` or ``artifacts`` raised) and its error."""
    from cdrflow.billing.completeness import previous_period
    from cdrflow.config.errors import one_line

    ti, dag_run, error = context.get("ti"), context.get("dag_run"), context.get("exception")
    try:
        period, account = _params(context.get("params"), kind)
    except Exception:  # (a form the run refused: the period is the scheduled one)
        period, account = None, None
    if period is None and dag_run is not None:
        period = previous_period(kind, dag_run.run_after, grace())
    task_id = getattr(ti, "task_id", "?")
    scope = f"account {account}" if account else "every account of the cycle"
    why = one_line(error) if isinstance(error, BaseException) else str(error or "no error recorded")
    field_name = "Day" if kind == "daily" else "Month"
    lines = [
        f"the {kind} billing run of {period} ({scope}) could not close: task {task_id} failed "
        f"(try {getattr(ti, 'try_number', '?')}, run {getattr(dag_run, 'run_id', '?')}).",
        f"error: {why}",
    ]
    if task_id == "completeness":
        lines.append("the completeness check gave up waiting: see its log for what was missing.")
    if log_url := getattr(ti, "log_url", None):
        lines.append(f"log: {log_url}")
    lines.append(
        f'after a fix, trigger cdrflow_billing_{kind} with {field_name} "{period}"'
        + (f' and Only this account "{account}"' if account else "")
        + " (a re-run charges only what is not charged yet)."
    )
    return Message(
        kind="billing",
        subject=f"cdrflow: the {kind} billing run of {period} ({scope}) could not close: {task_id} failed",
        body="\n".join(lines),
        facts={"kind": kind, "period": period, "account": account, "task": task_id, "error": why},
    )


def _notify_failure(kind: str) -> Callable[[Any], None]:
    """The tasks' ``on_failure_callback``: runs once a task has failed for good (its retries
    spent), on the worker; a notifier that fails is logged, never raised."""

    def on_failure(context: Any) -> None:
        notify.send_logged(failure_message(kind, context), context)

    return on_failure


def billing_dag(kind: str) -> DAG:
    """The billing DAG of ``kind`` (daily | monthly)."""
    waited = grace() + deadline()
    with DAG(
        dag_id=f"cdrflow_billing_{kind}",
        description=f"Close the previous {'day' if kind == 'daily' else 'month'}: charge its calls, write the invoices",
        schedule=CronTriggerTimetable(cron(kind, grace()), timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # one billrun of a kind at a time; the advisory lock guards the rest
        dagrun_timeout=timedelta(days=3),
        tags=["cdrflow", "billing", kind],
        default_args=default_args(
            retries=2, retry_delay=timedelta(minutes=2), on_failure_callback=_notify_failure(kind)
        ),
        params={"period": _period_param(kind), "account": account_param(kind)},
        doc_md=__doc__,
    ) as dag:

        @task.sensor(
            task_id="completeness",
            mode="reschedule",
            poke_interval=poke_interval().total_seconds(),
            timeout=(waited + timedelta(days=2)).total_seconds(),
        )
        def completeness(params: dict | None = None) -> PokeReturnValue:
            import logging
            from datetime import UTC, datetime

            from cdrflow.billing import completeness as check_module
            from cdrflow.billing.billrun import period_of
            from cdrflow.billing.completeness import previous_period
            from cdrflow.warehouse import db

            log = logging.getLogger("cdrflow.billing.completeness")
            period, account = _checked(params, kind)
            if period is None:
                period = previous_period(kind, get_current_context()["dag_run"].run_after, grace())
            start, end = period_of(kind, period)
            found = check_module.check(
                db.get_engine(), kind, start, end, account, datetime.now(UTC), grace(), deadline()
            )
            if not found.ready:
                log.info("%s billrun of %s (%s) not yet: %s", kind, period, account or "all", found.message)
                return PokeReturnValue(is_done=False)
            if found.missing:
                log.warning(
                    "%s billrun of %s goes on WITHOUT: %s (deadline %s UTC passed); their calls will be charged by "
                    "a later run of the period (an adjustment)",
                    kind,
                    period,
                    check_module.describe(found.missing),
                    f"{found.deadline:%Y-%m-%d %H:%M}",
                )
            else:
                log.info("%s billrun of %s: every carrier delivered", kind, period)
            return PokeReturnValue(is_done=True, xcom_value={"period": period, "missing": found.missing})

        @task
        def billrun(checked: dict, params: dict | None = None) -> dict:
            import logging

            from cdrflow.billing.billrun import run_billrun
            from cdrflow.billing.completeness import record_missing
            from cdrflow.warehouse import db

            log = logging.getLogger("cdrflow.billing.billrun")
            _, account = _params(params, kind)
            engine = db.get_engine()
            run = run_billrun(engine, kind, checked["period"], account=account)
            if run.new and checked["missing"]:
                record_missing(engine, run.id, checked["missing"])
            unrated = sum(run.unrated.values())
            totals = ", ".join(f"{a} {c}" for c, a in sorted(run.totals.items())) or "nothing"
            log.info(
                "billrun %s: %s %s, scope %s, version %s, %s%s: %d calls, %d rated, %d unrated %s; totals %s",
                run.id,
                kind,
                run.period_start,
                run.scope,
                run.version,
                run.status,
                "" if run.new else " (nothing new to charge: unchanged)",
                run.calls,
                run.rated,
                unrated,
                dict(sorted(run.unrated.items())),
                totals,
            )
            return {
                "billrun_id": run.id,
                "new": run.new,
                "version": run.version,
                "calls": run.calls,
                "rated": run.rated,
                "unrated": run.unrated,
                "totals": {c: format(a, "f") for c, a in run.totals.items()},
                "missing": checked["missing"],
            }

        @task
        def artifacts(result: dict) -> dict:
            import logging

            from cdrflow.billing.artifacts import write_artifacts
            from cdrflow.warehouse import db

            log = logging.getLogger("cdrflow.billing.artifacts")
            written = write_artifacts(db.get_engine(), result["billrun_id"])
            for a in written:
                log.info("%s %s: %s (%d bytes, sha1 %s)", a.kind, a.account_id or "", a.uri, a.bytes, a.sha1)
            summary = written[0].uri
            return {"billrun_id": result["billrun_id"], "summary": summary, "invoices": len(written) - 1}

        artifacts(billrun(completeness()))  # type: ignore[arg-type]  # XComArgs, resolved at run time
    return dag
