"""What the cdrflow page in the Airflow UI reads from the warehouse (:mod:`cdrflow.api.ui`).

Read-only queries, one fixed text per shape with bound parameters; each function takes the
connection and returns plain rows, so the pages are rendered from what is in the warehouse at
the moment of the request. Times are UTC; "the last N days" counts files by when they were
registered (``uploaded_date``), which is when the operator first could have seen them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Row, text

STATUSES = ("received", "processing", "loaded", "failed", "rejected", "duplicate")
ATTENTION = ("failed", "rejected")

# The reason a file has its status: the message of the last "status <its status>: ..." line of
# its processing log (greedy .* finds the last one).
_REASON = r"(regexp_match(f.processing_log, '.*status ' || f.status || ': ([^\n]*)'))[1]"

_STATUS_COUNTS = text("""
SELECT f.carrier, f.status, count(*) AS files, coalesce(sum(f.calls_loaded), 0) AS calls,
       coalesce(sum(q.n), 0) AS quarantined
FROM cdr_files f
LEFT JOIN LATERAL (SELECT count(*) AS n FROM rejected_rows r WHERE r.file_id = f.id) q ON true
WHERE f.uploaded_date >= :since
GROUP BY f.carrier, f.status
ORDER BY f.carrier, f.status
""")

_TOP_REASONS = text("""
SELECT reason, count(*) AS n, count(DISTINCT r.file_id) AS files
FROM rejected_rows r
JOIN cdr_files f ON f.id = r.file_id
CROSS JOIN LATERAL unnest(r.reasons) AS reason
WHERE f.uploaded_date >= :since AND (CAST(:carrier AS text) IS NULL OR f.carrier = :carrier)
GROUP BY reason
ORDER BY n DESC, reason
LIMIT :top
""")

_FILES = text(
    """
SELECT f.id, f.file_name, f.carrier, f.status, f.file_source, f.uploaded_date, f.file_size, f.lines,
       f.calls_loaded, f.calls_rejected, f.calls_duplicate, f.calls_flagged, f.duplicate_of, f.parent_id,
       (SELECT count(*) FROM rejected_rows r WHERE r.file_id = f.id) AS quarantined,
       """
    + _REASON
    + """ AS reason
FROM cdr_files f
WHERE (CAST(:status AS text) IS NULL OR f.status = :status)
  AND (CAST(:carrier AS text) IS NULL OR f.carrier = :carrier)
  AND f.uploaded_date >= :since
  AND (CAST(:until AS timestamptz) IS NULL OR f.uploaded_date < :until)
ORDER BY f.id DESC
LIMIT :limit
"""
)

_FILE = text(
    "SELECT f.*, "
    + _REASON
    + " AS reason, (SELECT coalesce(c.config->>'timezone', 'UTC') FROM carriers c WHERE c.code = f.carrier) AS zone"
    + " FROM cdr_files f WHERE f.id = :id"
)
_CHILDREN = text("SELECT id, file_name, status FROM cdr_files WHERE parent_id = :id OR duplicate_of = :id ORDER BY id")
_QUARANTINE = text("""
SELECT line_number, raw_text, raw_bytes IS NOT NULL AS has_bytes, length(raw_bytes) AS byte_count, reasons
FROM rejected_rows WHERE file_id = :id
ORDER BY line_number
LIMIT :limit OFFSET :offset
""")
_QUARANTINE_COUNT = text("SELECT count(*) FROM rejected_rows WHERE file_id = :id")
_FILE_REASONS = text("""
SELECT reason, count(*) AS n
FROM rejected_rows r CROSS JOIN LATERAL unnest(r.reasons) AS reason
WHERE r.file_id = :id
GROUP BY reason ORDER BY n DESC, reason
""")

_CARRIERS = text("SELECT code, name, delivery, billable, created_at FROM carriers ORDER BY code")
_DELIVERIES = text("""
SELECT carrier, CAST(uploaded_date AT TIME ZONE 'UTC' AS date) AS day, count(*) AS files,
       count(*) FILTER (WHERE status IN ('failed', 'rejected')) AS attention
FROM cdr_files
WHERE uploaded_date >= :since AND duplicate_of IS NULL
GROUP BY 1, 2
""")
_CALL_DAYS = text("SELECT carrier, day, calls FROM call_days WHERE day >= :first AND day <= :last")

_BILLRUNS = text("""
SELECT b.id, b.kind, b.period_start, b.period_end, b.scope, b.version, b.status, b.rerate IS NOT NULL AS rerating,
       b.started_at, b.finished_at, b.calls, b.rated, b.unrated, b.totals, b.buy_totals, b.missing_carriers, b.error
FROM billruns b
ORDER BY b.id DESC
LIMIT :limit
""")
_ARTIFACTS = text("""
SELECT id, billrun_id, kind, account_id, uri, bytes FROM billrun_artifacts
WHERE billrun_id = ANY(:ids)
ORDER BY billrun_id, kind DESC, account_id
""")

_HAS_REPORTS = text("SELECT to_regclass('report_requests') IS NOT NULL")
_REPORTS = text("""
SELECT id, account_id, report_name, start_time, end_time, status, failure_reason, row_count, bytes,
       created_at, completed_at, expires_at
FROM report_requests
ORDER BY created_at DESC, id
LIMIT :limit
""")


@dataclass
class FileFilter:
    """Which files a list shows: a status, a carrier, registered in [since, until)."""

    since: datetime
    until: datetime | None = None
    status: str | None = None
    carrier: str | None = None
    limit: int = 200


def status_counts(conn: Connection, since: datetime) -> list[Row]:
    """Files registered since ``since`` per carrier and status, with their calls and quarantined rows."""
    return list(conn.execute(_STATUS_COUNTS, {"since": since}))


def top_reasons(conn: Connection, since: datetime, carrier: str | None = None, top: int = 10) -> list[Row]:
    """The most frequent rejection reasons (failed checks) of quarantined rows of files registered
    since ``since``: reason, rows, files."""
    return list(conn.execute(_TOP_REASONS, {"since": since, "carrier": carrier, "top": top}))


def files(conn: Connection, which: FileFilter) -> list[Row]:
    """Files newest first, each with its quarantine count and the reason of its status."""
    params = {
        "status": which.status,
        "carrier": which.carrier,
        "since": which.since,
        "until": which.until,
        "limit": which.limit,
    }
    return list(conn.execute(_FILES, params))


@dataclass
class FileDetail:
    row: Row
    related: list[Row]  # archive members and duplicates of this file
    reasons: list[Row]  # reason -> rows, for this file
    quarantine: list[Row]
    quarantine_total: int


def file_detail(conn: Connection, file_id: int, *, limit: int = 200, offset: int = 0) -> FileDetail | None:
    """One file's registry row, its quarantine page (``limit`` rows from ``offset``) and its
    reasons; None when no file has this id."""
    row = conn.execute(_FILE, {"id": file_id}).first()
    if row is None:
        return None
    return FileDetail(
        row=row,
        related=list(conn.execute(_CHILDREN, {"id": file_id})),
        reasons=list(conn.execute(_FILE_REASONS, {"id": file_id})),
        quarantine=list(conn.execute(_QUARANTINE, {"id": file_id, "limit": limit, "offset": offset})),
        quarantine_total=conn.execute(_QUARANTINE_COUNT, {"id": file_id}).scalar_one(),
    )


@dataclass
class CarrierDays:
    """One carrier's row of the delivery calendar."""

    code: str
    name: str
    delivery: str
    billable: bool
    since: date  # the day the carrier was configured: no gap before it
    files: dict[date, int] = field(default_factory=dict)
    attention: dict[date, int] = field(default_factory=dict)
    calls: dict[date, int] = field(default_factory=dict)

    def is_gap(self, day: date, today: date) -> bool:
        """A day a ``delivery: daily`` carrier sent nothing: no file registered that day (UTC)
        and no calls that started that day. Today is not over, so never a gap yet."""
        return (
            self.delivery == "daily"
            and self.since <= day < today
            and not self.files.get(day)
            and not self.calls.get(day)
        )


def calendar(conn: Connection, first: date, last: date) -> list[CarrierDays]:
    """Per carrier, files registered and calls per UTC day from ``first`` to ``last``."""
    carriers = {
        r.code: CarrierDays(r.code, r.name, r.delivery, r.billable, r.created_at.date())
        for r in conn.execute(_CARRIERS)
    }
    since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    for r in conn.execute(_DELIVERIES, {"since": since}):
        if (c := carriers.get(r.carrier)) is not None:
            c.files[r.day] = r.files
            c.attention[r.day] = r.attention
    for r in conn.execute(_CALL_DAYS, {"first": first, "last": last}):
        if (c := carriers.get(r.carrier)) is not None:
            c.calls[r.day] = r.calls
    return list(carriers.values())


def billruns(conn: Connection, limit: int = 100) -> tuple[list[Row], dict[int, list[Row]]]:
    """The latest billruns, newest first, and their files (invoices, summary) by billrun id."""
    runs = list(conn.execute(_BILLRUNS, {"limit": limit}))
    artifacts: dict[int, list[Row]] = {}
    if runs:
        for a in conn.execute(_ARTIFACTS, {"ids": [r.id for r in runs]}):
            artifacts.setdefault(a.billrun_id, []).append(a)
    return runs, artifacts


def report_requests(conn: Connection, limit: int = 100) -> list[Any] | None:
    """The latest report requests, newest first; None when this warehouse has no report requests
    table yet (its migration not applied)."""
    if not conn.execute(_HAS_REPORTS).scalar_one():
        return None
    return list(conn.execute(_REPORTS, {"limit": limit}))
