"""Before a billing DAG closes a period: has the period ended everywhere, and has every carrier
delivered it?

- **Closed**: a period ends at midnight in each account's time zone (an account in
  ``America/New_York`` ends 1 November at 05:00 UTC on 2 November); the billing DAG waits until
  the latest end among the accounts of the run's scope (UTC for calls of no account), plus the
  **grace** for late files (``CDRFLOW_BILLING_GRACE_HOURS``, default 2).
- **Delivered**: every billable carrier with ``delivery: daily`` delivered each day of the period:
  a file of it registered (not a duplicate) on that day or the next (UTC), or calls of it on that
  day in ``call_days`` (what the loader counts). For a monthly billrun a carrier with
  ``delivery: monthly`` delivered when any of its files was registered from the first of the
  month to the day after its end, or it has calls in the month.
- A carrier still missing at the **deadline** (``CDRFLOW_BILLING_DEADLINE_HOURS`` after the end
  plus grace, default 6) does not hold billing back: the billrun runs, the task log names the
  carrier, and ``billruns.missing_carriers`` keeps it (carrier -> missing days). Its calls,
  when they come, are charged by the next run of the period: an adjustment (version 2).

The billing DAG's sensor asks :func:`check` at every poke (``mode="reschedule"``: no worker slot
is held between pokes); the logic is here, testable with any ``now``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from cdrflow.config.errors import ConfigurationError


def _hours(name: str, default: float) -> timedelta:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return timedelta(hours=default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r}: a number, e.g. 2 or 0.5") from None
    if value < 0:
        raise ConfigurationError(f"{name}={raw!r}: not a negative number")
    return timedelta(hours=value)


def grace() -> timedelta:
    """How long after a period ends billing waits for late files (``CDRFLOW_BILLING_GRACE_HOURS``)."""
    return _hours("CDRFLOW_BILLING_GRACE_HOURS", 2)


def deadline() -> timedelta:
    """How long after the end plus grace billing waits for a missing carrier
    (``CDRFLOW_BILLING_DEADLINE_HOURS``)."""
    return _hours("CDRFLOW_BILLING_DEADLINE_HOURS", 6)


def poke_interval() -> timedelta:
    """How often the completeness check looks again (``CDRFLOW_BILLING_POKE_MINUTES``, default 10)."""
    return _hours("CDRFLOW_BILLING_POKE_MINUTES", 10) / 60


def previous_period(kind: str, run_after: datetime, grace_: timedelta) -> str:
    """The period a scheduled run closes: the day (``2026-11-01``) or month (``2026-11``) before
    the midnight (UTC) the run's time is ``grace_`` after."""
    day = (run_after.astimezone(UTC) - grace_).date() - timedelta(days=1)
    return day.isoformat() if kind == "daily" else f"{day:%Y-%m}"


def cron(kind: str, grace_: timedelta) -> str:
    """The cron expression (UTC) of a billing DAG: midnight plus the grace, every day (daily) or
    on the first of the month (monthly)."""
    minutes = int(grace_.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hour, minute = divmod(rest, 60)
    if kind == "daily":
        return f"{minute} {hour} * * *"
    if days > 26:
        raise ConfigurationError("CDRFLOW_BILLING_GRACE_HOURS: at most 26 days (624 hours) for the monthly billing")
    return f"{minute} {hour} {1 + days} * *"


@dataclass
class Check:
    ready: bool
    closes_at: datetime  # end of the period in the latest zone of the scope, plus the grace
    deadline: datetime
    missing: dict[str, list[str]] = field(default_factory=dict)  # carrier -> days not delivered
    message: str = ""


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(zone)).astimezone(UTC)


def period_end(conn: Connection, kind: str, end: date, account: str | None) -> datetime:
    """When the period ending at ``end`` (exclusive) has ended for every account of the scope."""
    zones = set(
        conn.execute(
            text(
                "SELECT DISTINCT timezone FROM accounts WHERE cycle = :k "
                "AND (CAST(:a AS text) IS NULL OR account_id = :a)"
            ),
            {"k": kind, "a": account},
        ).scalars()
    )
    if account is None or not zones:
        zones.add("UTC")  # calls of no account are billed in UTC
    return max(_midnight(end, z) for z in zones)


_MISSING = """
SELECT r.code AS carrier, d.day::date AS day
FROM carriers r
CROSS JOIN generate_series(CAST(:start AS date), CAST(:end AS date) - 1, interval '1 day') AS d(day)
WHERE r.delivery = 'daily' AND r.billable
  AND NOT EXISTS (SELECT 1 FROM call_days cd WHERE cd.carrier = r.code AND cd.day = d.day::date AND cd.calls > 0)
  AND NOT EXISTS (SELECT 1 FROM cdr_files f WHERE f.carrier = r.code AND f.duplicate_of IS NULL
                  AND f.uploaded_date >= (d.day::date)::timestamp AT TIME ZONE 'UTC'
                  AND f.uploaded_date < (d.day::date + 2)::timestamp AT TIME ZONE 'UTC')
UNION ALL
SELECT r.code, NULL
FROM carriers r
WHERE CAST(:monthly AS boolean) AND r.delivery = 'monthly' AND r.billable
  AND NOT EXISTS (SELECT 1 FROM call_days cd WHERE cd.carrier = r.code AND cd.day >= :start AND cd.day < :end
                  AND cd.calls > 0)
  AND NOT EXISTS (SELECT 1 FROM cdr_files f WHERE f.carrier = r.code AND f.duplicate_of IS NULL
                  AND f.uploaded_date >= CAST(:start AS date)::timestamp AT TIME ZONE 'UTC'
                  AND f.uploaded_date < (CAST(:end AS date) + 1)::timestamp AT TIME ZONE 'UTC')
ORDER BY 1, 2
"""


def missing_deliveries(conn: Connection, kind: str, start: date, end: date) -> dict[str, list[str]]:
    """Carriers that have not delivered [start, end): carrier -> the days (``the month`` for a
    monthly carrier in a monthly run)."""
    missing: dict[str, list[str]] = {}
    for r in conn.execute(text(_MISSING), {"start": start, "end": end, "monthly": kind == "monthly"}):
        missing.setdefault(r.carrier, []).append(r.day.isoformat() if r.day else f"the month {start:%Y-%m}")
    return missing


def describe(missing: dict[str, list[str]]) -> str:
    def days(ds: list[str]) -> str:
        return ", ".join(ds) if len(ds) <= 3 else f"{ds[0]} .. {ds[-1]} ({len(ds)} days)"

    return "; ".join(f"{c} ({days(ds)})" for c, ds in missing.items())


def check(
    engine: Engine,
    kind: str,
    start: date,
    end: date,
    account: str | None,
    now: datetime,
    grace_: timedelta,
    deadline_: timedelta,
) -> Check:
    """Whether a billrun of [start, end) may run at ``now``; see the module's doc."""
    with engine.connect() as conn:
        closes = period_end(conn, kind, end, account) + grace_
        missing = missing_deliveries(conn, kind, start, end)
    last = closes + deadline_
    if now < closes:
        return Check(False, closes, last, missing, f"the period closes (end plus grace) at {closes:%Y-%m-%d %H:%M} UTC")
    if not missing:
        return Check(True, closes, last, missing, "every carrier delivered")
    if now < last:
        return Check(
            False,
            closes,
            last,
            missing,
            f"waiting until {last:%Y-%m-%d %H:%M} UTC for: {describe(missing)}",
        )
    return Check(
        True, closes, last, missing, f"deadline {last:%Y-%m-%d %H:%M} UTC passed; missing: {describe(missing)}"
    )


def record_missing(engine: Engine, billrun_id: int, missing: dict[str, list[str]]) -> None:
    """Keep the carriers a billrun ran without in ``billruns.missing_carriers``."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE billruns SET missing_carriers = CAST(:m AS jsonb) WHERE id = :id"),
            {"id": billrun_id, "m": json.dumps(missing)},
        )
