"""Report requests (seed 001): what a client may ask for, and the ``report_requests`` rows.

:func:`validate` turns a request body (decoded JSON) into a :class:`NewRequest`, following
``api-contract.md`` §A2.2 and §A2.5:

- ``start_time`` is required, ``end_time`` defaults to now (rounded up to the second) and must be
  before now + 24 h; both are ISO 8601 with ``Z``, ``+00:00`` or another offset (converted to
  UTC; no offset means UTC); ``start_time < end_time``. The range is half-open: calls that
  started at or after ``start_time`` and before ``end_time``.
- ``call_types`` (1 inbound, 2 outbound) and ``record_types`` (1 complete, 2 incomplete, 3 errors)
  default to ``[1]``; an empty list or another value is refused.
- ``connections``: strings or integers, echoed as strings.
- ``source``: ``calls``, ``call-control``, ``fax-api`` or ``webrtc`` (recorded and echoed; every
  source selects the same calls, which come from the carriers' files).
- ``filters``: :mod:`cdrflow.reports.filters`.
- ``gzip`` (cdrflow extension, default false): store and serve the report as ``.csv.gz``.

Every refusal is an :class:`InvalidRequest` naming the field. An account's requests cover its
own calls; an operator's (``account_id`` NULL) cover every account's. Listing, reading and
deleting see only the caller's own requests (an operator sees all).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, select, true
from sqlalchemy import delete as sa_delete

from cdrflow.reports.filters import InvalidRequest, check_text, read_filters
from cdrflow.warehouse.tables import report_requests

__all__ = ["InvalidRequest", "NewRequest", "ReportRequest", "validate", "create", "get", "list_requests", "delete"]

PENDING, COMPLETE, FAILED, EXPIRED = 1, 2, 3, 4
STATUS_NAMES = {PENDING: "pending", COMPLETE: "complete", FAILED: "failed", EXPIRED: "expired"}
CALL_TYPES = {1: "inbound", 2: "outbound"}
RECORD_TYPES = {1: "complete", 2: "incomplete", 3: "error"}
SOURCES = ("calls", "call-control", "fax-api", "webrtc")
AHEAD = timedelta(hours=24)  # end_time "Must be less than 24 hours from now"
MAX_NAME = 200
MAX_CONNECTIONS = 100
MAX_CONNECTION = 128
MAX_PER_PAGE = 1000


@dataclass(frozen=True)
class NewRequest:
    start_time: datetime
    end_time: datetime
    call_types: list[int]
    record_types: list[int]
    connections: list[str]
    report_name: str | None
    source: str | None
    filters: list[dict[str, Any]]
    gzip: bool


@dataclass(frozen=True)
class ReportRequest:
    """A ``report_requests`` row."""

    id: str
    account_id: str | None
    start_time: datetime
    end_time: datetime
    call_types: list[int]
    record_types: list[int]
    connections: list[str]
    report_name: str
    source: str | None
    filters: list[dict[str, Any]]
    gzip: bool
    status: int
    failure_reason: str | None
    artifact_uri: str | None
    bytes: int | None
    sha256: str | None
    row_count: int | None
    completed_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def shown_status(self, now: datetime | None = None) -> int:
        """The status a client sees: a complete report whose 30 days are over is Expired (4) even
        before housekeeping has deleted its file."""
        now = now or datetime.now(UTC)
        if self.status == COMPLETE and self.expires_at is not None and self.expires_at <= now:
            return EXPIRED
        return self.status

    def filename(self) -> str:
        """The download's file name: the report name made safe for a header and a file system."""
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", self.report_name).strip("._")[:100] or f"cdr-report-{self.id[:8]}"
        return stem + (".csv.gz" if self.gzip else ".csv")


# -- validation ----------------------------------------------------------------------------------


def parse_time(value: Any, field: str) -> datetime:
    """An ISO 8601 date and time as UTC (``Z``, ``+00:00``, another offset, or none = UTC)."""
    example = "e.g. 2022-07-29T00:00:00+00:00 or 2022-07-29T00:00:00Z"
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidRequest(f"{field}: a date and time in ISO 8601 is required, {example}", f"/{field}")
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"{field}: {value[:40]!r} is not a date and time in ISO 8601, {example}", f"/{field}"
        ) from None


def _codes(value: Any, field: str, known: dict[int, str]) -> list[int]:
    if value is None:
        return [1]
    allowed = ", ".join(f"{k} ({v})" for k, v in known.items())
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"{field}: a non-empty list of {allowed}", f"/{field}")
    for i, code in enumerate(value):
        if type(code) is not int or code not in known:
            raise InvalidRequest(f"{field}: {str(code)[:20]!r} is not one of {allowed}", f"/{field}/{i}")
    return sorted(set(value))


def _connections(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("connections: a list of connection ids", "/connections")
    if len(value) > MAX_CONNECTIONS:
        raise InvalidRequest(f"connections: at most {MAX_CONNECTIONS} connection ids", "/connections")
    out: list[str] = []
    for i, item in enumerate(value):
        if type(item) is int:  # the Telnyx SDKs send numbers; the seed says strings: echo strings
            item = str(item)
        text_value = check_text(item, f"/connections/{i}", limit=MAX_CONNECTION)
        if text_value not in out:
            out.append(text_value)
    return out


def validate(body: Any, now: datetime | None = None) -> NewRequest:
    """The request a client's body asks for, or :class:`InvalidRequest` (answered 400)."""
    now = now or datetime.now(UTC)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", "/")
    if body.get("start_time") is None:
        raise InvalidRequest("start_time is required, e.g. 2022-07-29T00:00:00+00:00", "/start_time")
    start = parse_time(body["start_time"], "start_time")
    if body.get("end_time") is None:
        end = now.replace(microsecond=0) + timedelta(seconds=1 if now.microsecond else 0)
    else:
        end = parse_time(body["end_time"], "end_time")
    if end >= now + AHEAD:
        raise InvalidRequest("end_time: must be less than 24 hours from now", "/end_time")
    if start >= end:
        raise InvalidRequest("start_time must be before end_time", "/start_time")
    name = body.get("report_name")
    if name is not None:
        name = check_text(name, "/report_name", limit=MAX_NAME, allow_empty=True)
    source = body.get("source")
    if source is not None and source not in SOURCES:
        raise InvalidRequest(f"source: must be one of {', '.join(SOURCES)}", "/source")
    gzip = body.get("gzip", False)
    if gzip is None:
        gzip = False
    if not isinstance(gzip, bool):
        raise InvalidRequest("gzip: true or false", "/gzip")
    return NewRequest(
        start_time=start,
        end_time=end,
        call_types=_codes(body.get("call_types"), "call_types", CALL_TYPES),
        record_types=_codes(body.get("record_types"), "record_types", RECORD_TYPES),
        connections=_connections(body.get("connections")),
        report_name=name or None,
        source=source,
        filters=read_filters(body.get("filters")),
        gzip=gzip,
    )


def request_id(value: str) -> str | None:
    """A request id in canonical form, or None when it cannot name a request (answered 404)."""
    try:
        return str(uuid.UUID(value)) if len(value) <= 40 else None
    except ValueError:
        return None


# -- rows ----------------------------------------------------------------------------------------

T = report_requests
SHOWN = (
    T.c.id,
    T.c.account_id,
    T.c.start_time,
    T.c.end_time,
    T.c.call_types,
    T.c.record_types,
    T.c.connections,
    T.c.report_name,
    T.c.source,
    T.c.filters,
    T.c.gzip,
    T.c.status,
    T.c.failure_reason,
    T.c.artifact_uri,
    T.c.bytes,
    T.c.sha256,
    T.c.row_count,
    T.c.completed_at,
    T.c.expires_at,
    T.c.created_at,
    T.c.updated_at,
)


def from_row(row: Any) -> ReportRequest:
    values = dict(row._mapping)
    return ReportRequest(
        **{
            **values,
            "id": str(values["id"]),
            "call_types": list(values["call_types"]),
            "record_types": list(values["record_types"]),
            "connections": list(values["connections"]),
            "filters": list(values["filters"] or []),
        }
    )


def create(conn: Connection, new: NewRequest, account_id: str | None, created_by: int | None = None) -> ReportRequest:
    """Record a pending request of ``account_id`` (None: an operator's, over every account)."""
    ident = str(uuid.uuid4())
    row = conn.execute(
        insert(T)
        .values(
            id=ident,
            account_id=account_id,
            start_time=new.start_time,
            end_time=new.end_time,
            call_types=new.call_types,
            record_types=new.record_types,
            connections=new.connections,
            report_name=new.report_name if new.report_name is not None else f"cdr-report-{ident[:8]}",
            source=new.source,
            filters=new.filters,
            gzip=new.gzip,
            created_by=created_by,
        )
        .returning(*SHOWN)
    ).one()
    return from_row(row)


def _visible(account_id: str | None, every_account: bool) -> ColumnElement[bool]:
    """The caller's own requests; an operator's view (``every_account``): all of them."""
    return true() if every_account else T.c.account_id == account_id


def get(conn: Connection, ident: str, account_id: str | None, every_account: bool) -> ReportRequest | None:
    """Request ``ident`` if the caller may see it (its own; an operator: any)."""
    canonical = request_id(ident)
    if canonical is None:
        return None
    row = conn.execute(select(*SHOWN).where(T.c.id == canonical, _visible(account_id, every_account))).one_or_none()
    return from_row(row) if row is not None else None


def list_requests(
    conn: Connection, account_id: str | None, every_account: bool, page: int = 1, per_page: int = 100
) -> list[ReportRequest]:
    """One page of the caller's requests, newest first (then by id: stable); past the end: []."""
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidRequest(f"page must be 1 or more and per_page between 1 and {MAX_PER_PAGE}", "/per_page")
    rows = conn.execute(
        select(*SHOWN)
        .where(_visible(account_id, every_account))
        .order_by(T.c.created_at.desc(), T.c.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return [from_row(r) for r in rows]


def delete(conn: Connection, ident: str, account_id: str | None, every_account: bool) -> ReportRequest | None:
    """Remove request ``ident`` (if the caller may see it) and return what it was; the caller then
    removes its artefact. A build still running finds the row gone and throws its file away."""
    canonical = request_id(ident)
    if canonical is None:
        return None
    row = conn.execute(
        sa_delete(T).where(T.c.id == canonical, _visible(account_id, every_account)).returning(*SHOWN)
    ).one_or_none()
    return from_row(row) if row is not None else None
