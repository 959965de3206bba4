"""Carriers that have not delivered by their deadline: found, notified once per carrier and day.

A carrier with ``deadline: "09:00"`` in the carrier file (``delivery: daily`` only) owes a file
every day by 09:00 in its ``timezone`` (UTC when none). The ``cdrflow_delivery_deadlines`` DAG
calls :func:`check` every 15 minutes: a carrier whose deadline has passed today (its day) and
that has registered no file since its midnight (duplicates do not count: the same bytes again
are not today's file) is late. A file that came after the deadline but before the check is a
delivery: nobody needs to chase it.

Each late carrier gets one notification (:mod:`cdrflow.orchestration.notify`) per day: the row
in ``delivery_alerts`` and the sending share one transaction, so a check that could not send
leaves no row (the next check tries again) and a sent alert is never sent again that day.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, text

from cdrflow.orchestration.notify import Message

log = logging.getLogger("cdrflow.delivery_deadlines")

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")

_WITH_DEADLINE = text("""
SELECT code, name, config->>'deadline' AS deadline, coalesce(config->>'timezone', 'UTC') AS zone
FROM carriers WHERE config->>'deadline' IS NOT NULL ORDER BY code
""")
_LAST_FILE = text("""
SELECT id, file_name, uploaded_date FROM cdr_files
WHERE carrier = :carrier AND duplicate_of IS NULL
ORDER BY uploaded_date DESC, id DESC LIMIT 1
""")
_RECORD = text("""
INSERT INTO delivery_alerts (carrier, day, deadline, last_file_id, notified_by)
VALUES (:carrier, :day, :deadline, :last_file_id, '')
ON CONFLICT (carrier, day) DO NOTHING
""")
_NOTIFIED_BY = text("UPDATE delivery_alerts SET notified_by = :by WHERE carrier = :carrier AND day = :day")


@dataclass(frozen=True)
class Late:
    """A carrier whose deadline of ``day`` (its own day) passed without a file."""

    carrier: str
    name: str
    zone: str
    deadline: str  # HH:MM, as the carrier file says
    day: date
    due: datetime  # the deadline on ``day``, aware (UTC)
    last_file: tuple[int, str, datetime] | None  # id, name, registered (UTC); None: never delivered

    def message(self, now: datetime) -> Message:
        """The notification: the carrier, its deadline and zone, its last file, where to look."""
        tz = zone_of(self.zone)
        local_now = now.astimezone(tz)
        last = (
            f"its last file: file {self.last_file[0]} {self.last_file[1]}, registered "
            f"{self.last_file[2].astimezone(tz):%Y-%m-%d %H:%M} {self.zone}"
            if self.last_file
            else "it has never delivered a file"
        )
        body = "\n".join(
            [
                f"carrier {self.carrier} ({self.name}) has delivered no file on {self.day} by its deadline "
                f"{self.deadline} {self.zone} ({self.due.astimezone(UTC):%H:%M} UTC); "
                f"checked at {local_now:%H:%M} {self.zone}.",
                last + ".",
                "Look at the collector runs of its sources (DAGs cdrflow_collect_*) and their logs, and at its files "
                "(cdrflow files); ask the carrier when it cannot be found.",
                f"Sent once for {self.carrier} and {self.day} (table delivery_alerts); its deadline is the carrier "
                "file's key deadline.",
            ]
        )
        return Message(
            kind="delivery",
            subject=f"cdrflow: carrier {self.carrier} has not delivered on {self.day} by its deadline "
            f"{self.deadline} {self.zone}",
            body=body,
            facts={
                "carrier": self.carrier,
                "day": self.day.isoformat(),
                "deadline": self.deadline,
                "timezone": self.zone,
                "due_utc": self.due.astimezone(UTC).isoformat(),
                "last_file_id": self.last_file[0] if self.last_file else None,
            },
        )


def zone_of(name: str) -> tzinfo:
    """The carrier's zone: an IANA name, ``UTC`` or a fixed offset (``+02:00``), as the carrier
    file accepts; anything else (a carrier row written by hand) is UTC."""
    if match := _OFFSET.match(name):
        sign = -1 if match[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def late_carriers(conn: Connection, now: datetime) -> list[Late]:
    """The carriers with a deadline that passed today (in their zone) and no file since their
    midnight, at ``now`` (aware)."""
    late = []
    for row in conn.execute(_WITH_DEADLINE).all():
        tz = zone_of(row.zone)
        today = now.astimezone(tz).date()
        hours, minutes = (int(p) for p in row.deadline.split(":"))
        due = datetime.combine(today, time(hours, minutes), tz).astimezone(UTC)
        if now < due:
            continue
        midnight = datetime.combine(today, time(), tz).astimezone(UTC)
        last = conn.execute(_LAST_FILE, {"carrier": row.code}).first()
        if last is not None and last.uploaded_date >= midnight:
            continue
        late.append(
            Late(
                row.code,
                row.name,
                row.zone,
                row.deadline,
                today,
                due,
                (last.id, last.file_name, last.uploaded_date) if last else None,
            )
        )
    return late


def check(engine: Engine, now: datetime, send: Callable[[Message], str]) -> list[Late]:
    """Notify each late carrier not yet notified today; return the ones notified now. ``send``
    sends a message and says by what (:func:`cdrflow.orchestration.notify.send`); when it
    raises, that carrier's alert is not recorded (the next check tries again) and the error is
    raised after the other carriers were handled."""
    with engine.connect() as conn:
        found = late_carriers(conn, now)
    notified: list[Late] = []
    failures: list[Exception] = []
    for late in found:
        key = {"carrier": late.carrier, "day": late.day}
        try:
            with engine.begin() as conn:
                new = conn.execute(
                    _RECORD,
                    {**key, "deadline": late.due, "last_file_id": late.last_file[0] if late.last_file else None},
                ).rowcount
                if not new:
                    continue  # notified earlier today
                by = send(late.message(now))
                conn.execute(_NOTIFIED_BY, {**key, "by": by})
        except Exception as exc:  # (one carrier's failure must not silence the others)
            log.error("carrier %s: the late-delivery notification was not sent: %s", late.carrier, exc)
            failures.append(exc)
            continue
        log.warning(
            "carrier %s has not delivered on %s by %s %s: notified", late.carrier, late.day, late.deadline, late.zone
        )
        notified.append(late)
    if failures:
        raise failures[0]
    return notified


def run(engine: Engine, context: Any = None, now: datetime | None = None) -> dict:
    """What the DAG's task does: load the carrier file into the warehouse (a deadline added to
    the file counts from the next check, as a source does for the collectors), then
    :func:`check`, sending through the configured notifier with the task's ``context``."""
    from cdrflow.config import carrier_file
    from cdrflow.orchestration import notify
    from cdrflow.warehouse import carriers

    with engine.begin() as conn:
        carriers.sync(conn, carrier_file.load())
    now = now or datetime.now(UTC)
    notified = check(engine, now, lambda message: notify.send(message, context))
    if not notified:
        log.info("no carrier newly late at %s UTC", f"{now:%Y-%m-%d %H:%M}")
    return {"notified": [{"carrier": n.carrier, "day": n.day.isoformat()} for n in notified]}
