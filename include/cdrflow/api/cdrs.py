"""Seeds 002 and 003, the CDRs API (Kazoo crossbar, ``api-contract.md`` §A3), under /v1 and /v2.

``GET /v{1,2}/accounts/{account_id}/cdrs``, ``.../cdrs/{cdr_id}`` and
``.../users/{user_id}/cdrs``; ``PUT /v{1,2}/api_auth`` is in :mod:`cdrflow.api.session`. Any
other method answers 405 in the Kazoo envelope (:mod:`cdrflow.api.errors` picks it by path).

- Who: a token of the account in the path (or an operator's); another account's path is 401,
  another account's CDR id is 404, as if it did not exist.
- Which: the legs (``calls`` rows) whose ``account_id`` is the path's, with a timestamp in
  ``created_from``..``created_to`` (:mod:`cdrflow.api.kazoo`, :mod:`cdrflow.api.cdr_query`),
  optionally one user's (``calls.user_id``) and ``filter_<field>=<value>``.
- How many: v1 answers the whole range in one response, streamed from a server-side cursor (a
  month of calls is never held in memory); v2 pages it, ``page_size`` rows (default 50, at most
  1000), ``next_start_key`` naming the next page's first row (absent on the last page), and
  ``paginate=false`` streams everything as v1 does. A v1 client that sends ``page_size`` gets
  pages too.
- As what: Kazoo JSON (:mod:`cdrflow.api.cdr_documents`), or CSV when asked (``Accept: text/csv``
  or ``application/octet-stream``, ``?accept=csv``): the whole range, streamed, one row per leg,
  ``Content-Disposition: attachment`` with the name from ``file_name`` or ``X-File-Name``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import ColumnElement, Connection, Select

from cdrflow.api import cdr_query
from cdrflow.api.auth import Caller, Principal, presented_token, require_account
from cdrflow.api.cdr_documents import CSV_COLUMNS, csv_row, detail, summary
from cdrflow.api.cdr_ids import CallKey, PageKey, page_key, parse_cdr_id, parse_page_key
from cdrflow.api.deps import Conn
from cdrflow.api.errors import bad_request, not_found, request_id, route_path
from cdrflow.api.kazoo import (
    TimeRange,
    envelope,
    envelope_head,
    envelope_tail,
    parse_boolean,
    parse_integer,
    time_range,
    wants_csv,
)

router = APIRouter()

DEFAULT_PAGE_SIZE = 50  # Kazoo's
MAX_PAGE_SIZE = 1000  # a larger page_size is served 1000 rows at a time
MAX_PATH_VALUE = 256
MAX_QUERY_VALUE = 2048
MAX_FILE_NAME = 255
STREAM_ROWS = 1000  # rows per round trip of the server-side cursor
CHUNK_ROWS = 200  # rows per piece written to the client
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _doc_params(*names: tuple[str, str]) -> dict[str, Any]:
    """OpenAPI entries for the query parameters the routes read themselves (``filter_*`` is open)."""
    return {"parameters": [{"name": n, "in": "query", "required": False, "description": d} for n, d in names]}


_LIST_PARAMS = _doc_params(
    ("created_from", "start of the range, Gregorian seconds, inclusive (default: created_to - 31 days 1 hour)"),
    ("created_to", "end of the range, Gregorian seconds, inclusive (default: now)"),
    ("page_size", "rows per page (v2 default 50, at most 1000; v1 pages only when given)"),
    ("start_key", "next_start_key of the previous page"),
    ("paginate", "false: the whole range in one streamed response"),
    ("ascending", "true: oldest first (default: newest first)"),
    ("descending", "false: oldest first"),
    ("filter_<field>", "equality on a field: " + ", ".join(sorted(cdr_query.FILTERS))),
    ("accept", "csv or text/csv: CSV, as the Accept header text/csv or application/octet-stream"),
    ("file_name", "CSV file name (or the X-File-Name header)"),
    ("auth_token", "the token, when not sent as X-Auth-Token"),
)


@dataclass(frozen=True)
class Listing:
    """What a list request asks for, checked before any SQL runs."""

    window: TimeRange
    conditions: list[ColumnElement[bool]]
    start: PageKey | None
    start_key: str | None
    ascending: bool
    page_size: int | None  # None: the whole range, streamed
    csv_type: str | None  # the CSV media type asked for; None: JSON
    file_name: str | None


def _check_path(name: str, value: str) -> None:
    if len(value) > MAX_PATH_VALUE or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise bad_request(f"{name} is longer than {MAX_PATH_VALUE} characters or holds control characters")


def parse_listing(request: Request, version: str, now: datetime) -> Listing:
    """The list parameters of ``request``; 400 with a one-line reason for any bad one."""
    query = request.query_params
    for key, value in query.multi_items():
        if len(key) > 200 or len(value) > MAX_QUERY_VALUE:
            raise bad_request(f"query parameter {key[:60]!r} is too long")
    window = time_range(query.get("created_from"), query.get("created_to"), now)
    conditions = [
        cdr_query.filter_condition(key.removeprefix("filter_"), value)
        for key, value in query.items()
        if key.startswith("filter_")
    ]
    ascending = parse_boolean("ascending", query.get("ascending")) is True
    ascending = ascending or parse_boolean("descending", query.get("descending")) is False
    paginate = parse_boolean("paginate", query.get("paginate"))
    asked = parse_integer("page_size", query.get("page_size"))
    if asked is not None and asked < 1:
        raise bad_request("page_size must be at least 1")
    csv_type = wants_csv(request.headers.get("accept"), query.get("accept"))
    page_size: int | None = None
    if csv_type is None and paginate is not False and (version == "v2" or asked is not None):
        page_size = min(asked or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    start_key = query.get("start_key") or None
    start = parse_page_key(start_key) if start_key else None
    file_name = query.get("file_name") or request.headers.get("x-file-name") or None
    if file_name is not None and len(file_name) > MAX_FILE_NAME:
        raise bad_request(f"file_name is longer than {MAX_FILE_NAME} characters")
    return Listing(window, conditions, start, start_key, ascending, page_size, csv_type, file_name)


def _version(request: Request) -> str:
    return route_path(request).split("/")[1]


def _key_of(row: Any) -> str:
    return page_key(row["moment"], CallKey(row["carrier"], row["record_key"], row["start_time"]))


# -- routes ------------------------------------------------------------------------------------


@router.get("/v1/accounts/{account_id}/cdrs", tags=["CDRs"], summary="CDRs of an account", openapi_extra=_LIST_PARAMS)
@router.get("/v2/accounts/{account_id}/cdrs", tags=["CDRs"], summary="CDRs of an account", openapi_extra=_LIST_PARAMS)
def account_cdrs(request: Request, account_id: str, caller: Caller, conn: Conn) -> Response:
    """Seed 003 "Gets the current CDRs for the account"; seed 002 "Retrieves a collection of CDR"."""
    return _list(request, conn, caller, account_id, None)


@router.get(
    "/v1/accounts/{account_id}/users/{user_id}/cdrs",
    tags=["CDRs"],
    summary="CDRs of a user",
    openapi_extra=_LIST_PARAMS,
)
@router.get(
    "/v2/accounts/{account_id}/users/{user_id}/cdrs",
    tags=["CDRs"],
    summary="CDRs of a user",
    openapi_extra=_LIST_PARAMS,
)
def user_cdrs(request: Request, account_id: str, user_id: str, caller: Caller, conn: Conn) -> Response:
    """Seed 003 "Gets the current CDRs for the user": the account's legs whose ``user_id`` it is."""
    _check_path("user_id", user_id)
    return _list(request, conn, caller, account_id, user_id)


@router.get("/v1/accounts/{account_id}/cdrs/{cdr_id}", tags=["CDRs"], summary="One CDR, in detail")
@router.get("/v2/accounts/{account_id}/cdrs/{cdr_id}", tags=["CDRs"], summary="One CDR, in detail")
def one_cdr(request: Request, account_id: str, cdr_id: str, caller: Caller, conn: Conn) -> Response:
    """Seed 003 "Gets details of the CDR": every property the leg has (``api-contract.md`` §A3.3-A3.4)."""
    _check_path("account_id", account_id)
    if len(cdr_id) > 2100:
        raise bad_request("cdr_id is too long to be a CDR id")
    require_account(caller, account_id)
    key = parse_cdr_id(cdr_id)
    row = conn.execute(cdr_query.one(account_id, key)).mappings().first() if key else None
    if row is None:
        raise not_found("could not find cdr with supplied id")
    doc = detail(row)
    csv_type = wants_csv(request.headers.get("accept"), request.query_params.get("accept"))
    if csv_type is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerows([CSV_COLUMNS, csv_row(doc)])
        name = request.query_params.get("file_name") or request.headers.get("x-file-name") or f"{cdr_id[:64]}.csv"
        return Response(buffer.getvalue(), media_type=csv_type, headers=_attachment(name[:MAX_FILE_NAME]))
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    revision = hashlib.sha1(text.encode()).hexdigest()
    body = envelope(auth_token=presented_token(request), data=doc, request_id=request_id(request), revision=revision)
    return JSONResponse(body)


# -- lists -------------------------------------------------------------------------------------


def _list(request: Request, conn: Connection, caller: Principal, account_id: str, user_id: str | None) -> Response:
    _check_path("account_id", account_id)
    require_account(caller, account_id)
    asked = parse_listing(request, _version(request), datetime.now(UTC))
    stmt = cdr_query.listing(
        account_id,
        asked.window,
        user_id=user_id,
        conditions=asked.conditions,
        start=asked.start,
        ascending=asked.ascending,
        limit=asked.page_size + 1 if asked.page_size is not None else None,  # one more: the next key
    )
    token, rid = presented_token(request), request_id(request)
    if asked.csv_type is not None:
        name = asked.file_name or f"cdrs_{asked.window.created_from}_{asked.window.created_to}.csv"
        return StreamingResponse(_csv_lines(_stream(conn, stmt)), media_type=asked.csv_type, headers=_attachment(name))
    if asked.page_size is None:
        return StreamingResponse(
            _json_list(_stream(conn, stmt), token, rid, asked.start_key), media_type="application/json"
        )
    rows = conn.execute(stmt).mappings().all()
    shown = rows[: asked.page_size]
    page: dict[str, Any] = {
        "page_size": len(shown),
        "start_key": asked.start_key or (_key_of(shown[0]) if shown else ""),
    }
    if len(rows) > asked.page_size:
        page["next_start_key"] = _key_of(rows[asked.page_size])
    body = envelope(auth_token=token, data=[summary(r) for r in shown], request_id=rid, revision="undefined", page=page)
    return JSONResponse(body)


def _stream(conn: Connection, stmt: Select) -> Iterator[Any]:
    """The rows of ``stmt`` from a server-side cursor, ``STREAM_ROWS`` per round trip.

    The statement runs here, before the response starts, so a failing query still answers 500
    in the Kazoo envelope; the rows are read while the response is written."""
    result = conn.execute(stmt.execution_options(yield_per=STREAM_ROWS)).mappings()

    def rows() -> Iterator[Any]:
        try:
            yield from result
        finally:
            result.close()

    return rows()


def _json_list(rows: Iterator[Any], token: str | None, rid: str, start_key: str | None) -> Iterator[str]:
    """A whole list in the Kazoo envelope, written as the rows arrive."""
    yield envelope_head(token)
    count = 0
    first = start_key
    pieces: list[str] = []
    for row in rows:
        if first is None:
            first = _key_of(row)
        pieces.append(("," if count else "") + json.dumps(summary(row), separators=(",", ":"), ensure_ascii=False))
        count += 1
        if len(pieces) >= CHUNK_ROWS:
            yield "".join(pieces)
            pieces = []
    yield "".join(pieces) + envelope_tail(request_id=rid, page={"page_size": count, "start_key": first or ""})


def _csv_lines(rows: Iterator[Any]) -> Iterator[str]:
    """RFC 4180 CSV (header first, CRLF, quoted where needed), written as the rows arrive."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for count, row in enumerate(rows, start=1):
        writer.writerow(csv_row(detail(row)))
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _attachment(name: str) -> dict[str, str]:
    """``Content-Disposition: attachment`` with an ASCII-safe name (and the exact one, RFC 6266)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ord(ch) >= 32 and ord(ch) != 127).strip() or "cdrs.csv"
    plain = _UNSAFE_NAME.sub("_", base).lstrip(".") or "cdrs.csv"
    value = f'attachment; filename="{plain}"'
    if plain != base:
        value += f"; filename*=UTF-8''{quote(base, safe='')}"
    return {"Content-Disposition": value}
