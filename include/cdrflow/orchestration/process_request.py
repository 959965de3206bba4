"""What an operator asked a ``cdrflow_process`` run to do, checked against the warehouse before
anything changes.

The form names files three ways: ids (``Reprocess file ids``, ``Accept file ids``), a carrier
(``Only this carrier``) and a day (``Re-run this day``, with or without a carrier). Input that
names nothing (a carrier the warehouse does not know, an id no file has, a duplicate's id, a day
without files, a file of another carrier than the one chosen) is refused as a whole with one
line that says which, before any file is put back to received: a typo never re-runs half of
what was meant.

A carrier's day is the files it delivered that day and the files holding calls that started
that day, both in the carrier's time zone (``timezone`` in the carrier file; UTC by default).
Duplicates are never re-run (their original is); an unpacked archive is re-run through its
members (their calls are theirs), an archive that could not be unpacked is re-run itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, text

from cdrflow.config.errors import CdrflowError, UnknownCarrier
from cdrflow.orchestration.params import day_value, file_id_list
from cdrflow.warehouse import carriers


class NamesNothing(CdrflowError):
    """The form names a carrier, file or day that does not exist (or cannot be re-run)."""


@dataclass(frozen=True)
class Request:
    """The form's values, parsed (not yet checked against the warehouse)."""

    file_ids: list[int] = field(default_factory=list)
    accept: list[int] = field(default_factory=list)
    carrier: str | None = None
    day: date | None = None
    files_per_batch: int = 500

    @classmethod
    def from_params(cls, params: dict | None) -> Request:
        """Parse the params; a value that is not what its field takes is a one-line
        :class:`CdrflowError` naming the field."""
        params = params or {}
        carrier = params.get("carrier")
        return cls(
            file_ids=file_id_list(params.get("file_ids"), "Reprocess file ids"),
            accept=file_id_list(params.get("accept_file_ids"), "Accept file ids"),
            carrier=(str(carrier).strip() or None) if carrier is not None else None,
            day=day_value(params.get("day"), "Re-run this day"),
            files_per_batch=int(params.get("files_per_batch") or 500),
        )

    @property
    def names_files(self) -> bool:
        """Whether the run is limited to named files (ids or a day), not every received file."""
        return bool(self.file_ids or self.accept or self.day)


@dataclass
class Plan:
    """The checked request: the files to put back to received and claim (in id order), and
    what was asked in words, for the task log."""

    rerun: list[int]
    said: list[str]


_FILES = text("SELECT id, carrier, status, duplicate_of FROM cdr_files WHERE id = ANY(:ids) ORDER BY id")
_ZONES = text(
    "SELECT code, coalesce(config->>'timezone', 'UTC') AS zone FROM carriers "
    "WHERE CAST(:carrier AS text) IS NULL OR code = :carrier ORDER BY code"
)
_DAY_FILES = text("""
SELECT f.id FROM cdr_files f
WHERE f.carrier = :carrier AND f.duplicate_of IS NULL
  AND NOT EXISTS (SELECT 1 FROM cdr_files m WHERE m.parent_id = f.id)
  AND ((f.uploaded_date >= :start AND f.uploaded_date < :end)
       OR f.id IN (SELECT c.file_id FROM calls c
                   WHERE c.carrier = :carrier AND c.start_time >= :start AND c.start_time < :end))
ORDER BY f.id
""")


def plan(conn: Connection, request: Request) -> Plan:
    """Check ``request`` against the warehouse; raise :class:`NamesNothing` for the first thing
    it names that is not there."""
    said: list[str] = []
    if request.carrier is not None:
        try:
            carriers.get(conn, request.carrier)
        except UnknownCarrier as exc:
            raise NamesNothing(f"Only this carrier: {exc}") from None
        said.append(f"only carrier {request.carrier}")
    named = _check_ids(conn, request)
    if request.file_ids:
        said.append(f"reprocess files {_ids(request.file_ids)}")
    if request.accept:
        said.append(f"accept files {_ids(request.accept)} over their rejection threshold")
    day_files: list[int] = []
    if request.day is not None:
        day_files = day_file_ids(conn, request.day, request.carrier)
        whose = f"{request.carrier}'s" if request.carrier else "every carrier's"
        if not day_files:
            raise NamesNothing(
                f"Re-run this day: {whose} day {request.day} has no file (none delivered that day, none "
                "holding calls of it, in the carrier's time zone)"
            )
        said.append(f"re-run {whose} day {request.day}: files {_ids(day_files)}")
    rerun = sorted(set(named) | set(day_files))
    return Plan(rerun, said)


def _check_ids(conn: Connection, request: Request) -> list[int]:
    ids = list(dict.fromkeys(request.file_ids + request.accept))
    if not ids:
        return []
    rows = {r.id: r for r in conn.execute(_FILES, {"ids": ids})}
    missing = [i for i in ids if i not in rows]
    if missing:
        field_name = "Reprocess file ids" if missing[0] in request.file_ids else "Accept file ids"
        raise NamesNothing(f"{field_name}: no file has id {_ids(missing)}")
    for i in ids:
        row = rows[i]
        if row.duplicate_of is not None:
            raise NamesNothing(
                f"file {i} is a duplicate of file {row.duplicate_of} (the same bytes) and is never loaded: "
                f"re-run file {row.duplicate_of} instead"
            )
        if request.carrier is not None and row.carrier != request.carrier:
            raise NamesNothing(
                f"file {i} is carrier {row.carrier}'s, not {request.carrier}'s: empty Only this carrier, or leave "
                f"file {i} out"
            )
    return ids


def day_file_ids(conn: Connection, day: date, carrier: str | None = None) -> list[int]:
    """The ids of ``carrier``'s (every carrier's) files of ``day``: delivered that day or holding
    calls that started that day, in each carrier's time zone; duplicates and unpacked archives
    left out (see the module)."""
    ids: set[int] = set()
    for row in conn.execute(_ZONES, {"carrier": carrier}).all():
        start, end = day_bounds(day, row.zone)
        ids.update(conn.execute(_DAY_FILES, {"carrier": row.code, "start": start, "end": end}).scalars())
    return sorted(ids)


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """[midnight, next midnight) of ``day`` in ``zone``, in UTC (an unknown zone: UTC)."""
    try:
        tz: tzinfo = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    start = datetime.combine(day, time(), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tz).astimezone(UTC)
    return start, end


def _ids(ids: list[int], most: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")
