"""Seed 004, the billing feed: ``GET /billing/feed?login=&password=&fromid=``, CSV.

The seed's client polls with its account number and password and the last id it collected
(``fromid`` is **inclusive**, so that record comes again: clients de-duplicate by id). The
records are the ones ``cdrflow feed`` prints (:mod:`cdrflow.billing.feed`: one query, one CSV
header for both), ids ascending, at most ``ApiSettings.feed_page_cap`` per response (``limit``
may ask for fewer), streamed from a server-side cursor as ``text/csv``.

Who may read it:

- ``login`` + ``password`` (the seed's way): a feed password of that account
  (``cdrflow accounts password``); the account sees its own records only. An unknown login and
  a wrong password get the same 401, so the answer tells nothing about which accounts exist.
- or an API token in any of the usual places (``X-Auth-Token``, ``Authorization: Bearer``,
  ``x-api-token``, ``?auth_token=``): an account's token sees that account's records, an
  operator's token every account's (``account=`` narrows it). This lets operators and
  reconciliation jobs read the feed without a feed password of each account.

Every parameter is checked before the warehouse is asked (400 in plain text otherwise): ids
and seconds are bounded integers, codes and labels have a fixed alphabet, so metacharacters or
oversized values never reach PostgreSQL. Every value is a bound parameter anyway. The password
is never logged (:mod:`cdrflow.api.secrets_filter` prints ``password=***``). Cells that a
spreadsheet would run as a formula are neutralised (:mod:`cdrflow.api.csv_safety`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator, Field
from sqlalchemy import Connection

from cdrflow.api.auth import presented_token
from cdrflow.api.csv_safety import neutralise
from cdrflow.api.deps import Conn, Settings
from cdrflow.api.errors import bad_request, unauthorized
from cdrflow.billing import feed
from cdrflow.warehouse.credentials import Principal, principal_for_feed_login, principal_for_token

router = APIRouter()

MAX_ID = 2**63 - 1  # billing_feed.id is a bigint
MAX_INT = 2**31 - 1
CHUNK = 64 * 1024  # characters per piece of the streamed body

ACCOUNT = r"^[\w.@:+-]{1,100}$"
LOGIN = r"^[\w.@:+-]{0,100}$"  # empty: a wrong login (401), not a malformed one
GROUP = r"^[\w .:/&+()-]{1,100}$"
PERIOD = r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$"
TYPE = r"^[0-9A-Z]{1,3}$"
NUMBER = r"^\+?[0-9A-Za-z*#]{1,40}$"

EXAMPLE = ",".join(feed.COLUMNS) + "\n"


def _blank_is_zero(value: Any) -> Any:
    """``fromid=`` (a client's template with nothing collected yet) means no fromid: from the start."""
    return 0 if isinstance(value, str) and not value.strip() else value


def feed_principal(request: Request, conn: Connection, login: str | None, password: str | None) -> Principal:
    """The seed's login/password when either is given, else an API token."""
    if login is not None or password is not None:
        principal = principal_for_feed_login(conn, login or "", password or "")
        if principal is None:
            raise unauthorized("invalid login or password")
        return principal
    token = presented_token(request)
    if not token:
        raise unauthorized("send login and password (or an API token)")
    principal = principal_for_token(conn, token)
    if principal is None:
        raise unauthorized("invalid credentials")
    return principal


def _chunks(lines: Iterator[str]) -> Iterator[str]:
    """Lines joined into pieces of about :data:`CHUNK` characters (one write per piece, not per line)."""
    piece: list[str] = []
    size = 0
    for line in lines:
        piece.append(line)
        size += len(line)
        if size >= CHUNK:
            yield "".join(piece)
            piece, size = [], 0
    if piece:
        yield "".join(piece)


@router.get(
    "/billing/feed",
    tags=["Billing feed"],
    summary="Seed 004: billing records from an id on (inclusive), as CSV",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}, "example": EXAMPLE}}, "description": "CSV"},
        400: {"content": {"text/plain": {}}, "description": "a parameter is not valid"},
        401: {"content": {"text/plain": {}}, "description": "bad login or password (or token)"},
    },
)
def billing_feed(
    request: Request,
    conn: Conn,
    settings: Settings,
    login: Annotated[str | None, Query(description="account number", pattern=LOGIN)] = None,
    password: Annotated[str | None, Query(description="the account's feed password", max_length=1024)] = None,
    fromid: Annotated[
        Annotated[int, Field(ge=0, le=MAX_ID)],
        BeforeValidator(_blank_is_zero),
        Query(description="first id to return, inclusive; absent, empty or 0: all"),
    ] = 0,
    limit: Annotated[int | None, Query(ge=1, le=MAX_INT, description="at most this many (capped)")] = None,
    account: Annotated[str | None, Query(pattern=ACCOUNT, description="cdrflow: one account (operators)")] = None,
    date_from: Annotated[date | None, Query(description="cdrflow: call date (account's zone) from, inclusive")] = None,
    date_to: Annotated[date | None, Query(description="cdrflow: call date to, inclusive")] = None,
    billing_period: Annotated[str | None, Query(pattern=PERIOD, description="cdrflow: 2026-11 or 2026-11-01")] = None,
    billing_group: Annotated[str | None, Query(pattern=GROUP, description="cdrflow: billing group")] = None,
    min_seconds: Annotated[int | None, Query(ge=0, le=MAX_INT, description="cdrflow: at least these seconds")] = None,
    to: Annotated[str | None, Query(pattern=NUMBER, description="cdrflow: callee starts with")] = None,
    from_: Annotated[str | None, Query(alias="from", pattern=NUMBER, description="cdrflow: caller starts with")] = None,
    type_: Annotated[str | None, Query(alias="type", pattern=TYPE, description="cdrflow: seed 004 call Type")] = None,
) -> StreamingResponse:
    """Records with ``id >= fromid``, ids ascending, at most ``feed_page_cap`` (10,000 by default):
    poll again with the last id received. The header names the columns (README "Billing feed")."""
    if date_from is not None and date_to is not None and date_to < date_from:
        raise bad_request(f"date_to {date_to} is before date_from {date_from}")
    principal = feed_principal(request, conn, login, password)
    if not principal.is_operator:
        if account is not None and account != principal.account_id:
            raise unauthorized("the credential does not belong to this account")
        account = principal.account_id
    where = feed.FeedFilter(
        account=account,
        billing_period=billing_period,
        billing_group=billing_group,
        date_from=date_from,
        date_to=date_to,
        min_seconds=min_seconds,
        to=to,
        from_=from_,
        type=type_,
    )
    cap = settings.feed_page_cap
    rows = feed.records(conn, fromid, min(limit, cap) if limit else cap, where)  # the query runs now
    return StreamingResponse(
        _chunks(feed.csv_lines(rows, cell=neutralise)),
        media_type="text/csv",
        headers={"Cache-Control": "no-store"},
    )
