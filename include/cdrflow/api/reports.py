"""Seed 001, report requests (Telnyx v1): create, list, get, delete (``api-contract.md`` §A2).

Served at ``/reporting/cdr_requests`` and at the alias ``/v1/reporting/cdr_requests`` (Telnyx v1
clients use ``https://api.telnyx.com/v1/`` as their base). Bodies are bare objects and arrays as
in the seed; errors use the Telnyx envelope (chosen by the path, :mod:`cdrflow.api.errors`).

- ``POST`` answers **200** with the pending request (status 1, ``report_url`` null); the report
  is built by the ``cdrflow_reports`` DAG (or ``cdrflow reports build``). Validation:
  :mod:`cdrflow.reports.requests`.
- ``GET`` lists the caller's requests, newest first: ``page`` (default 1) and ``per_page``
  (default 100, at most 1000); anything else is a 400. ``GET {id}`` shows one.
- ``report_url`` is null until the report is Complete, then an absolute signed link
  (``<base>/downloads/<token>``) that works without a login until the report expires, 30 days
  after completion; null again when Failed or Expired. A complete report whose 30 days are over
  shows status 4 (Expired) even before housekeeping deletes its file.
- ``DELETE {id}`` deletes the request and its file: its link answers 404 at once, and a second
  DELETE or a GET answers 404.

An account sees only its own requests (another account's id answers 404, as if it did not
exist); an operator's token sees every request, and an operator's report covers every account.
cdrflow extensions, ignored by Telnyx clients: ``gzip`` (request and response: the report as
``.csv.gz``), ``source`` echoed, ``failure_reason`` (why a request Failed).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from cdrflow.api import links
from cdrflow.api.auth import Caller
from cdrflow.api.deps import Conn, Settings, external_base
from cdrflow.api.errors import ApiError, bad_request, not_found
from cdrflow.reports import requests, store
from cdrflow.reports.requests import COMPLETE, EXPIRED, InvalidRequest, ReportRequest

log = logging.getLogger(__name__)
router = APIRouter()

PATH = "/reporting/cdr_requests"
ALIAS = "/v1/reporting/cdr_requests"
TAG = "Report requests"
TIME = "UTC, ISO 8601: 2022-07-29T00:00:00+00:00 or 2022-07-29T00:00:00Z"


class CdrRequestIn(BaseModel):
    """A report request (seed 001's request body)."""

    start_time: StrictStr = Field(description=TIME)
    end_time: StrictStr | None = Field(
        None, description=f"{TIME}. Must be less than 24 hours from now; default: now. After start_time"
    )
    call_types: list[StrictInt] | None = Field(None, description="Inbound = 1, Outbound = 2. Default: [1]")
    record_types: list[StrictInt] | None = Field(
        None, description="Complete = 1, Incomplete = 2, Errors = 3 (error records and quarantined rows). Default: [1]"
    )
    connections: list[StrictStr | StrictInt] | None = Field(None, description="Connection ids (strings or numbers)")
    report_name: StrictStr | None = Field(None, description="Default: cdr-report-<first 8 characters of the id>")
    source: StrictStr | None = Field(None, description="calls, call-control, fax-api or webrtc")
    filters: list[dict[str, Any] | StrictStr] | None = Field(
        None,
        description=(
            "Filter objects {filter_type: and|or, cli, cli_filter, cld, cld_filter, tags_list} (or JSON strings "
            "of them). Types must read 'and (and)* (or)*'; combined as a left fold from TRUE: "
            "[and f1, and f2, or f3] selects (f1 AND f2) OR f3"
        ),
    )
    gzip: StrictBool | None = Field(None, description="cdrflow extension: the report as .csv.gz")


class CdrRequestOut(BaseModel):
    """A report request as the seed shows it (and cdrflow's extensions)."""

    id: str
    start_time: str
    end_time: str
    call_types: list[int]
    record_types: list[int]
    connections: list[str]
    report_name: str
    status: int = Field(description="Pending = 1, Complete = 2, Failed = 3, Expired = 4")
    report_url: str | None = Field(description="Signed download link while Complete (no login needed); else null")
    filters: list[dict[str, Any]]
    created_at: str
    updated_at: str
    source: str | None = None
    gzip: bool = False
    failure_reason: str | None = None


class DeleteOut(BaseModel):
    success: bool
    message: str


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def shown(row: ReportRequest, base: str, now: datetime | None = None) -> dict[str, Any]:
    """The request as clients see it: effective status, a fresh signed link while Complete."""
    status = row.shown_status(now)
    url = None
    if status == COMPLETE and row.expires_at is not None:
        url = links.link_url(base, "report", row.id, row.expires_at)
    return {
        "id": row.id,
        "start_time": _time(row.start_time),
        "end_time": _time(row.end_time),
        "call_types": row.call_types,
        "record_types": row.record_types,
        "connections": row.connections,
        "report_name": row.report_name,
        "status": status,
        "report_url": url,
        "filters": row.filters,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
        "source": row.source,
        "gzip": row.gzip,
        "failure_reason": row.failure_reason if status == requests.FAILED else None,
    }


@router.post(PATH, tags=[TAG], summary="Create a CDR request", response_model=CdrRequestOut)
@router.post(ALIAS, tags=[TAG], include_in_schema=False)
def create_request(body: CdrRequestIn, request: Request, conn: Conn, caller: Caller, api_settings: Settings) -> Any:
    """Record a report request (Pending); check its status with ``GET /reporting/cdr_requests/{id}``."""
    try:
        new = requests.validate(body.model_dump(exclude_unset=True))
    except InvalidRequest as exc:
        raise bad_request(str(exc), pointer=exc.field) from None
    row = requests.create(conn, new, caller.account_id, caller.credential_id)
    conn.commit()  # now, not after the response is sent: a client's next call must find the request
    return shown(row, external_base(request, api_settings))


@router.get(PATH, tags=[TAG], summary="List all CDR requests", response_model=list[CdrRequestOut])
@router.get(ALIAS, tags=[TAG], include_in_schema=False)
def list_requests(
    request: Request,
    conn: Conn,
    caller: Caller,
    api_settings: Settings,
    page: int = Query(1, ge=1, le=1_000_000, description="Page number of results to load"),
    per_page: int = Query(100, ge=1, le=requests.MAX_PER_PAGE, description="Number of results per page"),
) -> Any:
    """The caller's requests, newest first; a page past the end is ``[]``."""
    rows = requests.list_requests(conn, caller.account_id, caller.is_operator, page, per_page)
    base, now = external_base(request, api_settings), datetime.now(UTC)
    return [shown(r, base, now) for r in rows]


@router.get(PATH + "/{id}", tags=[TAG], summary="Retrieve CDR request status", response_model=CdrRequestOut)
@router.get(ALIAS + "/{id}", tags=[TAG], include_in_schema=False)
def get_request(id: str, request: Request, conn: Conn, caller: Caller, api_settings: Settings) -> Any:
    """One request, with ``report_url`` once its report is built."""
    row = requests.get(conn, id, caller.account_id, caller.is_operator)
    if row is None:
        raise not_found("Resource not found: no CDR request with this id")
    return shown(row, external_base(request, api_settings))


@router.delete(PATH + "/{id}", tags=[TAG], summary="Delete a CDR Request", response_model=DeleteOut)
@router.delete(ALIAS + "/{id}", tags=[TAG], include_in_schema=False)
def delete_request(id: str, conn: Conn, caller: Caller) -> Any:
    """Permanently delete a request and its report file; its link stops working at once."""
    row = requests.delete(conn, id, caller.account_id, caller.is_operator)
    if row is None:
        raise not_found("Resource not found: no CDR request with this id")
    try:
        store.remove(row.artifact_uri)
    except store.StoreUnavailable as exc:  # the transaction rolls back: nothing is half-deleted
        log.warning("report %s not deleted: %s", row.id, exc)
        raise ApiError(503, "the report file cannot be deleted now; try again later", code="unavailable") from exc
    conn.commit()  # before the answer: a GET right after it must answer 404
    return {"success": True, "message": "CDR request deleted"}


def resolve(conn, ident: str) -> links.Download | None:
    """What a report link points at, checked on every download: a deleted request answers 404, an
    expired one 410 (its ``expires_at`` has passed, whether or not housekeeping has run)."""
    row = requests.get(conn, ident, None, every_account=True)
    if row is None or row.status not in (COMPLETE, EXPIRED) or not row.artifact_uri:
        return None
    return links.Download(
        uri=row.artifact_uri,
        filename=row.filename(),
        size=row.bytes,
        media_type="application/gzip" if row.gzip else "text/csv",
        expires_at=row.expires_at,
    )


links.register("report", resolve)
