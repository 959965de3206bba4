"""Seed 000, the CDR Files registry: list, one file, upload (``api-contract.md`` §A1).

- ``GET /backend/api/v1/CDRFiles/`` (and without the slash: no 307): the caller's files,
  ascending id, a bare JSON array of at most ``limit`` (default and maximum
  ``ApiSettings.files_page_cap``). ``idAfter`` is strict (``id >``), ``createdSince`` and
  ``updatedSince`` are inclusive (``>=``), all ANDed. A full page carries a ``Link: <...>;
  rel="next"`` header; the seed's way to page is to ask again with ``idAfter`` = the last id.
- ``GET /backend/api/v1/CDRFiles/{id}``: one file. An id that is not a number, unknown, or
  another account's answers 404: the seed types the id as Text, and a text that names none of
  the caller's files is simply not found.
- ``POST /backend/api/v1/CDRFiles/`` (multipart ``file``, ``carrier``, optional ``notes``):
  stores and records the bytes through the registry like any collector (source ``upload``),
  so the same bytes a second time are recorded as a ``Duplicate`` of the first. Answers 201 with
  the new record and its ``Location``. An account uploads only for its own carriers (the carrier
  file's ``account:``): another's carrier is 403, an unknown carrier 400.

Who sees what: an operator every file; an account the files it uploaded (``cdr_files.account_id``)
and every file of the carriers that are its own (``carriers.account_id``). Members of an
archive carry the archive's uploader. Filter values are parsed here, so anything that is not a
number or an ISO 8601 time (SQL text, 10,000 characters) is a 400 naming the parameter; values
reach PostgreSQL only as bound parameters of SQLAlchemy Core statements.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, Select, or_, select

from cdrflow.api.auth import Caller
from cdrflow.api.deps import Conn, Settings, WarehouseEngine, external_base
from cdrflow.api.errors import ApiError, bad_request, not_found
from cdrflow.api.file_schema import CdrFile, file_json
from cdrflow.config import settings as cdrflow_settings
from cdrflow.config.errors import RawStoreUnavailable, SourceUnreadable, UnknownCarrier
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import register_file
from cdrflow.warehouse import tables
from cdrflow.warehouse.credentials import Principal

log = logging.getLogger(__name__)

router = APIRouter(tags=["CDR Files"])

PATH = "/backend/api/v1/CDRFiles"
MAX_NOTES = 10_000  # characters of an upload's notes
MAX_CARRIER = 200  # characters of a carrier code (codes are short; this only bounds the message)
BIGINT_MAX = 2**63 - 1

_COLUMNS = (
    "id",
    "file_name",
    "stored_file_id",
    "uploaded_date",
    "file_source",
    "carrier",
    "file_type",
    "billing",
    "daily",
    "billrun",
    "notes",
    "mail_message",
    "mail_from",
    "mail_to",
    "mail_subject",
    "status",
    "file_path",
    "original_hash",
    "duplicate_of",
    "file_size",
    "lines",
    "file_processed_stamp",
    "processing_log",
    "revision_number",
    "created_at",
    "updated_at",
)
_files = tables.cdr_files
_carriers = tables.carriers


# --- who sees what ------------------------------------------------------------------------------


def _visible(stmt: Select, principal: Principal) -> Select:
    """``stmt`` narrowed to the files ``principal`` may see."""
    if principal.is_operator:
        return stmt
    own_carriers = select(_carriers.c.code).where(_carriers.c.account_id == principal.account_id)
    return stmt.where(or_(_files.c.account_id == principal.account_id, _files.c.carrier.in_(own_carriers)))


def _select() -> Select:
    return select(*(_files.c[name] for name in _COLUMNS))


def fetch_file(conn: Connection, principal: Principal, file_id: int) -> dict[str, Any] | None:
    """File ``file_id`` as the API shows it, or None when it does not exist for ``principal``."""
    row = conn.execute(_visible(_select().where(_files.c.id == file_id), principal)).mappings().first()
    return file_json(row) if row else None


def list_files(
    conn: Connection,
    principal: Principal,
    *,
    id_after: int | None,
    created_since: datetime | None,
    updated_since: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The files ``principal`` sees that pass every given filter, ascending id, at most ``limit``."""
    stmt = _visible(_select(), principal)
    if id_after is not None:
        stmt = stmt.where(_files.c.id > id_after)
    if created_since is not None:
        stmt = stmt.where(_files.c.created_at >= created_since)
    if updated_since is not None:
        stmt = stmt.where(_files.c.updated_at >= updated_since)
    rows = conn.execute(stmt.order_by(_files.c.id).limit(limit)).mappings()
    return [file_json(row) for row in rows]


# --- query values -------------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
# a '+' of an offset that reached us as a space (an unencoded '+' in a query string means ' ')
_SPACED_OFFSET = re.compile(r"(T[0-9:.,]+) ([0-9]{2}(:?[0-9]{2})?)$")


def _shown(value: str) -> str:
    """A client's value quoted for a message, cut to 40 characters (never 10,000 echoed back)."""
    return repr(value if len(value) <= 40 else value[:37] + "...")


def parse_integer(name: str, raw: str | None) -> int | None:
    """A query value that must be an integer; absent or empty is None."""
    if raw is None or raw == "":
        return None
    value = raw.strip()
    if not _INTEGER.fullmatch(value) or not -BIGINT_MAX - 1 <= int(value) <= BIGINT_MAX:
        raise bad_request(f"{name} must be an integer, got {_shown(raw)}")
    return int(value)


def parse_instant(name: str, raw: str | None) -> datetime | None:
    """A query value that must be an ISO 8601 date or date-time; naive means UTC; absent is None."""
    if raw is None or raw == "":
        return None
    value = _SPACED_OFFSET.sub(r"\1+\2", raw.strip())
    problem = f"{name} must be an ISO 8601 date or date-time (2024-01-31, 2024-01-31T12:00:00Z), got {_shown(raw)}"
    if len(value) > 40:
        raise bad_request(problem)
    try:
        instant = datetime.fromisoformat(value)
        return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
    except (ValueError, OverflowError):
        raise bad_request(problem) from None


def _limit(raw: str | None, cap: int) -> int:
    limit = parse_integer("limit", raw)
    if limit is None:
        return cap
    if not 1 <= limit <= cap:
        raise bad_request(f"limit must be between 1 and {cap}, got {limit}")
    return limit


# --- routes -------------------------------------------------------------------------------------

_LIST_DOC = (
    "The caller's CDR files, ascending id, as a bare array. `idAfter`: only ids greater than it "
    "(integer); `createdSince`, `updatedSince`: only files created / changed at or after that instant "
    "(ISO 8601; a date or a time without offset is UTC). Filters combine with AND. At most `limit` "
    "files (default and maximum: the server's page cap, 1000 unless configured); a full page has a "
    '`Link: <...>; rel="next"` header, or ask again with `idAfter` = the last id. A bad value is 400.'
)


@router.get(PATH + "/", response_model=list[CdrFile], summary="List CDR files", description=_LIST_DOC)
@router.get(PATH, response_model=list[CdrFile], include_in_schema=False)
def list_cdr_files(
    request: Request,
    caller: Caller,
    conn: Conn,
    api_settings: Settings,
    id_after: Annotated[str | None, Query(alias="idAfter", description="Only include files with a higher ID")] = None,
    created_since: Annotated[
        str | None, Query(alias="createdSince", description="Only include files created since the given time")
    ] = None,
    updated_since: Annotated[
        str | None, Query(alias="updatedSince", description="Only include files updated since the given time")
    ] = None,
    limit: Annotated[str | None, Query(description="At most this many files (1 to the page cap)")] = None,
) -> JSONResponse:
    page_size = _limit(limit, api_settings.files_page_cap)
    files = list_files(
        conn,
        caller,
        id_after=parse_integer("idAfter", id_after),
        created_since=parse_instant("createdSince", created_since),
        updated_since=parse_instant("updatedSince", updated_since),
        limit=page_size,
    )
    headers = {}
    if len(files) == page_size:
        query = {k: v for k, v in request.query_params.items() if k not in ("idAfter", "auth_token")}
        query["idAfter"] = files[-1]["id"]
        headers["Link"] = f'<{external_base(request, api_settings)}{PATH}/?{urlencode(query)}>; rel="next"'
    return JSONResponse(files, headers=headers)


@router.get(
    PATH + "/{file_id}",
    response_model=CdrFile,
    summary="Retrieve a single CDR file",
    description="One CDR file with all 23 seed fields in the seed's order, then cdrflow's extras. An id "
    "that is not a number, does not exist or is another account's answers 404.",
    responses={404: {"description": "No such file for this caller"}},
)
def get_cdr_file(file_id: str, caller: Caller, conn: Conn) -> JSONResponse:
    number = int(file_id) if _INTEGER.fullmatch(file_id) and 0 < int(file_id) <= BIGINT_MAX else None
    record = fetch_file(conn, caller, number) if number is not None else None
    if record is None:
        raise not_found(f"no CDR file with id {_shown(file_id)}")
    return JSONResponse(record)


@lru_cache(maxsize=4)
def _raw_store(url: str) -> RawStore:
    return RawStore(url)


def _carrier_for_upload(conn: Connection, principal: Principal, code: str) -> None:
    """Refuse an upload for a carrier that does not exist (400) or is not the caller's (403)."""
    owner = conn.execute(select(_carriers.c.code, _carriers.c.account_id).where(_carriers.c.code == code)).first()
    if owner is not None and principal.may_see(owner.account_id):
        return
    if owner is not None:
        raise ApiError(403, f"carrier {code!r} is not one of this account's carriers", code="forbidden")
    mine = _visible_carriers(conn, principal)
    raise bad_request(f"unknown carrier {_shown(code)}; carriers you may upload for: {', '.join(mine) or 'none'}")


def _visible_carriers(conn: Connection, principal: Principal) -> list[str]:
    stmt = select(_carriers.c.code).order_by(_carriers.c.code)
    if not principal.is_operator:
        stmt = stmt.where(_carriers.c.account_id == principal.account_id)
    return list(conn.execute(stmt).scalars())


@router.post(
    PATH + "/",
    status_code=201,
    response_model=CdrFile,
    summary="Upload a CDR file",
    description="Multipart form: `file` (the bytes), `carrier` (a carrier code), optional `notes`. The "
    "file is stored and recorded like a collected one (source `upload`); the same bytes a second time "
    "are recorded with status `Duplicate` and `duplicateOf`. Answers 201 with the record and its "
    "`Location`. An account may upload only for its own carriers (403 otherwise); an unknown carrier is 400.",
    responses={400: {"description": "Missing part, unknown carrier"}, 403: {"description": "Not your carrier"}},
)
@router.post(PATH, status_code=201, response_model=CdrFile, include_in_schema=False)
def upload_cdr_file(
    request: Request,
    caller: Caller,
    conn: Conn,
    engine: WarehouseEngine,
    api_settings: Settings,
    file: UploadFile = File(..., description="The CDR file"),
    carrier: str = Form(..., description="Carrier code"),
    notes: str | None = Form(None, description="Free text kept with the file"),
) -> JSONResponse:
    carrier = carrier.strip()
    if not carrier or len(carrier) > MAX_CARRIER:
        raise bad_request(f"carrier must be a carrier code, got {_shown(carrier)}", code="invalid_request")
    if notes is not None and len(notes) > MAX_NOTES:
        raise bad_request(f"notes may have at most {MAX_NOTES} characters, got {len(notes)}")
    _carrier_for_upload(conn, caller, carrier)
    try:
        registration = register_file(
            engine,
            _raw_store(cdrflow_settings.raw_store_url()),
            file.file,
            file_name=file.filename or "",
            carrier=carrier,
            file_source="upload",
            notes=notes or None,
            account_id=caller.account_id,
        )
    except (SourceUnreadable, UnknownCarrier) as exc:
        raise bad_request(str(exc)) from None
    except RawStoreUnavailable as exc:
        log.error("upload of %r for carrier %s not recorded: %s", file.filename, carrier, exc)
        raise ApiError(503, "the raw store is unavailable: the file was not recorded; try again later") from None
    record = fetch_file(conn, caller, registration.file_id)
    if record is None:  # the caller may upload for the carrier, so it sees the file
        raise RuntimeError(f"file {registration.file_id} was registered but is not visible to its uploader")
    location = f"{external_base(request, api_settings)}{PATH}/{registration.file_id}"
    return JSONResponse(record, status_code=201, headers={"Location": location})
