"""The SELECT of a report: which calls (and quarantined rows) a request covers, as CSV columns.

Built with SQLAlchemy Core from the request, every value a bound parameter:

- **accounts**: an account's request sees only calls with its ``account_id``; an operator's
  (``account_id`` NULL) sees every account's;
- **time**: ``start_time <= calls.start_time < end_time``, on the partition key, so PostgreSQL
  reads only the months of the range (the values are in the statement when it is planned, see
  :func:`render`);
- **call_types** on ``calls.direction``: 1 inbound, 2 outbound; asking for both selects every
  call, those of unknown direction too;
- **record_types**: 1 complete, 2 incomplete (``calls.record_type``; a call loaded without one
  is complete when it has billed seconds), 3 errors: calls the carrier marked as errors, plus
  the **quarantined rows** (``rejected_rows``) of files the account sees (its uploads and its
  carriers' files; an operator: all) quarantined within the time range. A quarantined line was
  never parsed, so it has no direction, numbers, tags or connection: call_types do not apply to
  it, and a request with filters or connections includes none;
- **connections**: ``calls.connection`` is one of them;
- **filters**: cli/cld on the caller/callee number as stored, in E.164 and in E.164 without its
  ``+`` (any of the three matching is a match; ``%`` and ``_`` in a value are plain characters);
  ``tags_list`` when the call carries any of the tags; combined as
  :mod:`cdrflow.reports.filters` says (a left fold from TRUE).

**CSV injection.** A text cell a spreadsheet would run as a formula gets a leading ``'``, by the
rule of :mod:`cdrflow.api.csv_safety` (which the API applies to the CSV it writes in Python): it
begins with ``=``, ``@``, a tab or a carriage return, or with ``+`` or ``-`` unless the whole cell
is a plain number or telephone number (``+13125550001``, ``-1.5``, ``+61 2 9999 9999`` stay as
they are; ``+cmd`` and ``-2+3+cmd|...`` do not). It is done inside the SELECT, a CASE on a bound
regular expression (:data:`FORMULA`, with a negative lookahead for the number shape), so COPY
stays the fast path. Values that are ours (record type, direction, times, numbers) are not
touched.

Columns, in order: :data:`COLUMNS`. Times are ISO 8601 in UTC with ``Z``; ``tags`` are joined
with ``;``; ``reasons`` (why a row was quarantined) likewise. Rows are ordered by start time
(then carrier and record key), quarantined rows last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    SmallInteger,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import psycopg2 as pg_psycopg2

from cdrflow.warehouse.tables import calls, carriers, cdr_files, rejected_rows

# A cell a spreadsheet would run as a formula (cdrflow.api.csv_safety.is_dangerous, as a PostgreSQL
# regular expression): = @ tab CR first, or + - first unless the cell is [+-][0-9][0-9 .,()/-]* whole.
FORMULA = "^([=@\t\r]|[+-](?![0-9][0-9 .,()/-]*$))"

COLUMNS = (
    "record_type",
    "direction",
    "carrier",
    "call_leg_id",
    "other_leg_call_id",
    "start_time",
    "answer_time",
    "end_time",
    "duration_sec",
    "billed_sec",
    "cli",
    "cli_e164",
    "cld",
    "cld_e164",
    "caller_name",
    "callee_name",
    "connection_id",
    "tags",
    "hangup_cause",
    "hangup_code",
    "disposition",
    "account_id",
    "user_id",
    "call_type",
    "call_sub_type",
    "file_id",
    "line_number",
    "reasons",
    "raw_line",
)
TEXT_COLUMNS = frozenset(COLUMNS) - {
    "start_time",
    "answer_time",
    "end_time",
    "duration_sec",
    "billed_sec",
    "hangup_code",
    "file_id",
    "line_number",
}
# Text cells whose values are ours (checked sets, generated times), never a caller's: not neutralised.
_OURS = frozenset({"record_type", "direction", "start_time", "answer_time", "end_time"})
_DIRECTIONS = {1: "inbound", 2: "outbound"}
_RECORDS = {1: "complete", 2: "incomplete", 3: "error"}


@dataclass(frozen=True)
class Selection:
    """What a report covers (a request's fields; ``account_id`` None: every account)."""

    account_id: str | None
    start_time: datetime
    end_time: datetime
    call_types: list[int]
    record_types: list[int]
    connections: list[str]
    filters: list[dict[str, Any]]

    @classmethod
    def of(cls, request: Any) -> Selection:
        return cls(
            request.account_id,
            request.start_time,
            request.end_time,
            list(request.call_types),
            list(request.record_types),
            list(request.connections),
            list(request.filters),
        )


def _safe(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    """The text cell with a leading ``'`` when a spreadsheet would take it for a formula."""
    return case((expr.regexp_match(FORMULA), literal("'", Text) + expr), else_=expr)


def _iso(ts: ColumnElement[Any]) -> ColumnElement[Any]:
    """ISO 8601 in UTC with ``Z``, whatever the session's time zone (fractions only when present)."""
    return func.btrim(cast(func.to_json(func.timezone("UTC", ts)), Text), '"') + literal("Z", Text)


def _number(stored: ColumnElement[Any], e164: ColumnElement[Any], value: str, how: str) -> ColumnElement[bool]:
    """A number fragment against the number as stored, in E.164, and in E.164 without ``+``."""
    method = {"contains": "contains", "starts_with": "startswith", "ends_with": "endswith"}[how]
    forms = (stored, e164, func.ltrim(e164, "+"))
    return or_(*(getattr(form, method)(value, autoescape=True) for form in forms))


def _criteria(f: dict[str, Any]) -> ColumnElement[bool]:
    """One filter object: its criteria ANDed."""
    parts: list[ColumnElement[bool]] = []
    if "cli" in f:
        parts.append(_number(calls.c.caller_number, calls.c.caller_e164, f["cli"], f["cli_filter"]))
    if "cld" in f:
        parts.append(_number(calls.c.callee_number, calls.c.callee_e164, f["cld"], f["cld_filter"]))
    if "tags_list" in f:
        parts.append(calls.c.tags.overlap(cast(list(f["tags_list"]), calls.c.tags.type)))
    return and_(*parts)


def filters_clause(filters: list[dict[str, Any]]) -> ColumnElement[bool]:
    """The filters as a left fold from TRUE: ``acc AND f`` for an ``and``, ``acc OR f`` for an ``or``."""
    acc: ColumnElement[bool] = true()
    for f in filters:
        crit = _criteria(f)
        acc = and_(acc, crit) if f["filter_type"] == "and" else or_(acc, crit)
    return acc


def _record_type() -> ColumnElement[Any]:
    billed = func.coalesce(calls.c.billing_seconds, 0) > 0
    return func.coalesce(calls.c.record_type, case((billed, "complete"), else_="incomplete"))


def _calls_part(sel: Selection) -> Select:
    c = calls.c
    cells: dict[str, ColumnElement[Any] | None] = {
        "record_type": _record_type(),
        "direction": c.direction,
        "carrier": c.carrier,
        "call_leg_id": c.carrier_call_id,
        "other_leg_call_id": c.other_leg_call_id,
        "start_time": _iso(c.start_time),
        "answer_time": _iso(c.answer_time),
        "end_time": _iso(c.end_time),
        "duration_sec": c.duration_seconds,
        "billed_sec": c.billing_seconds,
        "cli": c.caller_number,
        "cli_e164": c.caller_e164,
        "cld": c.callee_number,
        "cld_e164": c.callee_e164,
        "caller_name": c.caller_name,
        "callee_name": c.callee_name,
        "connection_id": c.connection,
        "tags": func.array_to_string(c.tags, ";"),
        "hangup_cause": c.hangup_cause,
        "hangup_code": c.hangup_code,
        "disposition": c.disposition,
        "account_id": c.account_id,
        "user_id": c.user_id,
        "call_type": c.call_type,
        "call_sub_type": c.call_sub_type,
        "file_id": c.file_id,
        "line_number": c.line_number,
        "reasons": None,
        "raw_line": None,
    }
    where: list[ColumnElement[bool]] = [c.start_time >= sel.start_time, c.start_time < sel.end_time]
    if sel.account_id is not None:
        where.append(c.account_id == sel.account_id)
    if set(sel.call_types) != set(_DIRECTIONS):
        where.append(c.direction.in_([_DIRECTIONS[t] for t in sel.call_types]))
    where.append(_record_type().in_([_RECORDS[t] for t in sel.record_types]))
    if sel.connections:
        where.append(c.connection.in_(sel.connections))
    if sel.filters:
        where.append(filters_clause(sel.filters))
    keys = [
        literal(0, SmallInteger).label("_part"),
        c.start_time.label("_ts"),
        c.carrier.label("_k1"),
        c.record_key.label("_k2"),
        literal(0, BigInteger).label("_n"),
    ]
    return select(*_shown(cells), *keys).where(*where)


def _quarantine_part(sel: Selection) -> Select:
    r, f, k = rejected_rows.c, cdr_files.c, carriers.c
    cells: dict[str, ColumnElement[Any] | None] = dict.fromkeys(COLUMNS)
    cells.update(
        {
            "record_type": literal("error", Text),
            "carrier": f.carrier,
            "account_id": func.coalesce(f.account_id, k.account_id),
            "file_id": r.file_id,
            "line_number": r.line_number,
            "reasons": func.array_to_string(r.reasons, ";"),
            "raw_line": r.raw_text,
        }
    )
    where: list[ColumnElement[bool]] = [r.created_at >= sel.start_time, r.created_at < sel.end_time]
    if sel.account_id is not None:
        where.append(or_(f.account_id == sel.account_id, k.account_id == sel.account_id))
    keys = [
        literal(1, SmallInteger).label("_part"),
        r.created_at.label("_ts"),
        literal("", Text).label("_k1"),
        literal("", Text).label("_k2"),
        r.id.label("_n"),
    ]
    joined = rejected_rows.join(cdr_files, f.id == r.file_id).outerjoin(carriers, k.code == f.carrier)
    return select(*_shown(cells), *keys).select_from(joined).where(*where)


def _typed_null(name: str) -> ColumnElement[Any]:
    if name in ("start_time", "answer_time", "end_time") or name in TEXT_COLUMNS:
        return cast(null(), Text)
    return cast(null(), BigInteger if name == "file_id" else Integer)


def _shown(cells: dict[str, ColumnElement[Any] | None]) -> list[ColumnElement[Any]]:
    """The cells in :data:`COLUMNS` order: None as a typed NULL (a UNION needs the types), text
    from the warehouse neutralised against formulas."""
    shown: list[ColumnElement[Any]] = []
    for name in COLUMNS:
        cell = cells[name]
        if cell is None:
            cell = _typed_null(name)
        elif name in TEXT_COLUMNS and name not in _OURS:
            cell = _safe(cell)
        shown.append(cell.label(name))
    return shown


def includes_quarantine(sel: Selection) -> bool:
    return 3 in sel.record_types and not sel.filters and not sel.connections


def report_select(sel: Selection) -> Select:
    """The report's rows, :data:`COLUMNS` in order, sorted."""
    parts = [_calls_part(sel)]
    if includes_quarantine(sel):
        parts.append(_quarantine_part(sel))
    rows = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("report")
    return select(*(rows.c[n] for n in COLUMNS)).order_by(rows.c._part, rows.c._ts, rows.c._k1, rows.c._k2, rows.c._n)


def render(cursor: Any, statement: Select) -> str:
    """The statement as one SQL text for ``COPY (...) TO STDOUT``, which takes no parameters.

    The values are quoted by psycopg2's ``cursor.mogrify`` (libpq's own escaping for the
    connection's encoding and ``standard_conforming_strings``), never by string formatting, so
    a request's text cannot change the statement. Literal values also let the planner prune the
    calls partitions outside the time range."""
    compiled = statement.compile(dialect=pg_psycopg2.dialect(), compile_kwargs={"render_postcompile": True})
    sql = cursor.mogrify(str(compiled), compiled.params)
    return sql.decode() if isinstance(sql, bytes) else sql


__all__ = ["COLUMNS", "FORMULA", "Selection", "filters_clause", "render", "report_select"]
