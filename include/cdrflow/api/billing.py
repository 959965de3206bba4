"""Billing outputs over HTTP: billruns and their files (invoice CSVs, the billrun summary).

- ``GET /billing/billruns``: the billruns the caller may see, newest first, paged (``page``,
  ``per_page`` <= 1000), filtered by ``kind``, ``period`` (a month ``2026-11``: every billrun
  whose period starts in it, monthly and daily; a day ``2026-11-01``: those starting that day)
  and ``status``.
- ``GET /billing/billruns/{id}``: one billrun with its counts, unrated calls by reason, totals per
  currency (decimal strings, never floats) and its files, each with a signed download link.

Who sees what. An operator token: every billrun (running and failed ones too), the whole
billrun's figures, the buy side, the carriers it closed without (``missing_carriers``), and all
its files. An account token: only the billruns that invoiced it (invoice lines or an invoice
file for the account; a failed run charged nothing, so it never shows), with the account's own
figures (its calls, rated, unrated by reason, totals), its own invoice file and nothing else:
not the other accounts' invoices, and not the summary, which names every account of the run;
``buy``, ``missing_carriers`` and ``error`` are null. A billrun the account may not see answers
404, as one that does not exist.

Links. A file's ``url`` is ``<base>/downloads/<token>`` (:mod:`cdrflow.api.links`): the token
names the ``billrun_artifacts`` row (kind ``invoice`` or ``summary`` and its id, never a path),
is signed, and expires 30 days after it was issued (each GET of a billrun issues fresh links).
Each download re-reads the row, so a file whose row is gone answers 404.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection, text

from cdrflow.api import links
from cdrflow.api.auth import Caller
from cdrflow.api.deps import Conn, Settings, external_base
from cdrflow.api.errors import bad_request, not_found
from cdrflow.warehouse.credentials import Principal

router = APIRouter(tags=["Billing"])

LINK_LIFETIME = timedelta(days=30)
MAX_ID = 2**63 - 1
PERIOD = r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$"

Kind = Literal["daily", "monthly"]
Status = Literal["running", "closed", "failed"]


class BillrunItem(BaseModel):
    """A billrun in a list."""

    id: int
    kind: Kind
    period: str = Field(description="the period's label: 2026-11-01 (daily) or 2026-11 (monthly)")
    period_start: date = Field(description="first day of the period (in each account's time zone)")
    period_end: date = Field(description="the day after the period (exclusive)")
    scope: str = Field(description="the account it charged, or 'all'")
    version: int = Field(description="1, then 2, 3, ... for adjustments (late files) and reratings")
    status: Status
    rerating: bool = Field(description="true for a rerating (`cdrflow bill rerate`)")
    started_at: datetime
    finished_at: datetime | None
    account_id: str | None = Field(description="whose figures these are: the caller's account, or null (all)")
    totals: dict[str, str] = Field(description="sell totals: currency -> amount as a decimal string")
    url: str = Field(description="this billrun's detail")


class BillrunPage(BaseModel):
    billruns: list[BillrunItem]
    page: int
    per_page: int
    total: int = Field(description="billruns matching the filters, over every page")


class BuySide(BaseModel):
    """What carriers charge us (operators only)."""

    rated: int
    unrated: dict[str, int]
    totals: dict[str, str]


class BillrunFile(BaseModel):
    id: int = Field(description="billrun_artifacts.id")
    kind: Literal["invoice", "summary"]
    account_id: str | None = Field(description="the invoiced account; null for the summary")
    filename: str
    media_type: str
    bytes: int
    sha1: str = Field(description="SHA1 of the file's bytes, hex: check a download against it")
    created_at: datetime
    url: str = Field(description="signed download link, no login needed")
    url_expires_at: datetime = Field(description="30 days after this response")


class BillrunDetail(BillrunItem):
    calls: int = Field(description="calls charged (sell side)")
    rated: int
    unrated: dict[str, int] = Field(description="calls not rated: reason -> count")
    buy: BuySide | None = Field(description="operators only")
    missing_carriers: dict[str, Any] | None = Field(
        description="operators only: carriers that had not delivered when it ran -> days"
    )
    error: str | None = Field(description="operators only: why it failed")
    files: list[BillrunFile]


# An account sees a billrun that invoiced it: index lookups on invoice_lines' primary key and
# billrun_artifacts' unique index (charges have no index by account).
_VISIBLE = """
  AND (CAST(:account AS text) IS NULL
       OR EXISTS (SELECT 1 FROM invoice_lines l WHERE l.billrun_id = b.id AND l.account_id = :account)
       OR EXISTS (SELECT 1 FROM billrun_artifacts f WHERE f.billrun_id = b.id AND f.kind = 'invoice'
                  AND coalesce(f.account_id, '') = :account))
"""

_FILTERS = """
WHERE (CAST(:kind AS text) IS NULL OR b.kind = :kind)
  AND (CAST(:status AS text) IS NULL OR b.status = :status)
  AND (CAST(:p_from AS date) IS NULL OR b.period_start >= :p_from)
  AND (CAST(:p_to AS date) IS NULL OR b.period_start < :p_to)
"""

_ITEM = """
SELECT b.id, b.kind, b.period_start, b.period_end, b.scope, b.version, b.status, b.rerate IS NOT NULL AS rerating,
       b.started_at, b.finished_at, b.calls, b.rated, b.unrated, b.buy_rated, b.buy_unrated, b.buy_totals,
       b.missing_carriers, b.error,
       CASE WHEN CAST(:account AS text) IS NULL THEN b.totals
            ELSE (SELECT coalesce(jsonb_object_agg(t.currency, t.amount::text), '{}'::jsonb)
                  FROM (SELECT currency, sum(amount) AS amount FROM invoice_lines
                        WHERE billrun_id = b.id AND account_id = :account GROUP BY currency) t)
       END AS totals
FROM billruns b
"""

_LIST = text(_ITEM + _FILTERS + _VISIBLE + "ORDER BY b.id DESC LIMIT :limit OFFSET :offset")
_COUNT = text("SELECT count(*) FROM billruns b" + _FILTERS + _VISIBLE)
_ONE = text(_ITEM + "WHERE b.id = :id" + _VISIBLE)

_ACCOUNT_COUNTS = text("""
SELECT unrated_reason, count(*) AS n FROM charges
WHERE billrun_id = :id AND side = 'sell' AND account_id = :account
GROUP BY unrated_reason
""")

_FILES = text("""
SELECT id, kind, account_id, uri, bytes, sha1, created_at FROM billrun_artifacts
WHERE billrun_id = :id AND (CAST(:account AS text) IS NULL OR (kind = 'invoice' AND account_id = :account))
ORDER BY kind DESC, account_id
""")

_ARTIFACT = text("SELECT id, billrun_id, kind, uri, bytes FROM billrun_artifacts WHERE id = :id AND kind = :kind")

MEDIA_TYPES = {"invoice": "text/csv", "summary": "application/json"}


def _money(amounts: dict[str, Any]) -> dict[str, str]:
    return {currency: format(Decimal(str(amount)), "f") for currency, amount in sorted(amounts.items())}


def _period_label(kind: str, start: date) -> str:
    return start.isoformat() if kind == "daily" else start.strftime("%Y-%m")


def _period_range(period: str | None) -> tuple[date | None, date | None]:
    """``2026-11`` -> [1 November, 1 December); ``2026-11-01`` -> that day; a 400 when no date."""
    if period is None:
        return None, None
    try:
        if len(period) == 7:
            first = date.fromisoformat(period + "-01")
            return first, (first + timedelta(days=32)).replace(day=1)
        day = date.fromisoformat(period)
    except ValueError as exc:
        raise bad_request(f"period: {period!r} is not a month (2026-11) or a day (2026-11-01)") from exc
    return day, day + timedelta(days=1)


def _file_name(billrun_id: int, uri: str) -> str:
    return f"billrun-{billrun_id}-{uri.rstrip('/').rsplit('/', 1)[-1]}"


def _item(row: Any, principal: Principal, base: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "period": _period_label(row.kind, row.period_start),
        "period_start": row.period_start,
        "period_end": row.period_end,
        "scope": row.scope,
        "version": row.version,
        "status": row.status,
        "rerating": row.rerating,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "account_id": None if principal.is_operator else principal.account_id,
        "totals": _money(row.totals),
        "url": f"{base}/billing/billruns/{row.id}",
    }


def _viewer(principal: Principal) -> str | None:
    """The account whose figures the caller sees; None: an operator, everything."""
    return None if principal.is_operator else principal.account_id


@router.get("/billing/billruns", summary="Billruns, newest first")
def list_billruns(
    request: Request,
    conn: Conn,
    caller: Caller,
    settings: Settings,
    kind: Annotated[Kind | None, Query()] = None,
    period: Annotated[str | None, Query(pattern=PERIOD, description="a month (2026-11) or a day")] = None,
    status: Annotated[Status | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BillrunPage:
    """The billruns the caller may see (an account: those that invoiced it), newest first."""
    p_from, p_to = _period_range(period)
    params = {"kind": kind, "status": status, "p_from": p_from, "p_to": p_to, "account": _viewer(caller)}
    base = external_base(request, settings)
    total = conn.execute(_COUNT, params).scalar_one()
    rows = conn.execute(_LIST, {**params, "limit": per_page, "offset": (page - 1) * per_page})
    items = [BillrunItem(**_item(r, caller, base)) for r in rows]
    return BillrunPage(billruns=items, page=page, per_page=per_page, total=total)


def _files(conn: Connection, billrun_id: int, account: str | None, base: str) -> list[BillrunFile]:
    expires = datetime.now(UTC).replace(microsecond=0) + LINK_LIFETIME
    return [
        BillrunFile(
            id=f.id,
            kind=f.kind,
            account_id=f.account_id,
            filename=_file_name(billrun_id, f.uri),
            media_type=MEDIA_TYPES[f.kind],
            bytes=f.bytes,
            sha1=f.sha1,
            created_at=f.created_at,
            url=links.link_url(base, f.kind, str(f.id), expires),
            url_expires_at=expires,
        )
        for f in conn.execute(_FILES, {"id": billrun_id, "account": account})
    ]


@router.get("/billing/billruns/{billrun_id}", summary="One billrun, its figures and its files")
def get_billrun(
    request: Request,
    conn: Conn,
    caller: Caller,
    settings: Settings,
    billrun_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> BillrunDetail:
    """404 for a billrun that does not exist or that the caller's account may not see."""
    account = _viewer(caller)
    row = conn.execute(_ONE, {"id": billrun_id, "account": account}).first()
    if row is None:
        raise not_found(f"no billrun {billrun_id}")
    base = external_base(request, settings)
    detail: dict[str, Any] = _item(row, caller, base)
    if account is None:
        detail |= {
            "calls": row.calls,
            "rated": row.rated,
            "unrated": dict(sorted(row.unrated.items())),
            "buy": BuySide(rated=row.buy_rated, unrated=dict(row.buy_unrated), totals=_money(row.buy_totals)),
            "missing_carriers": row.missing_carriers,
            "error": row.error,
        }
    else:
        counts = {r.unrated_reason: r.n for r in conn.execute(_ACCOUNT_COUNTS, {"id": billrun_id, "account": account})}
        unrated = dict(sorted((reason, n) for reason, n in counts.items() if reason is not None))
        detail |= {
            "calls": sum(counts.values()),
            "rated": counts.get(None, 0),
            "unrated": unrated,
            "buy": None,
            "missing_carriers": None,
            "error": None,
        }
    detail["files"] = _files(conn, billrun_id, account, base)
    return BillrunDetail(**detail)


def _artifact_resolver(kind: str) -> links.Resolver:
    """Links of ``kind`` name a billrun_artifacts row by id; the row is read again on each download."""

    def resolve(conn: Connection, ident: str) -> links.Download | None:
        if not ident.isdigit() or len(ident) > 18:
            return None
        row = conn.execute(_ARTIFACT, {"id": int(ident), "kind": kind}).first()
        if row is None:
            return None
        return links.Download(
            uri=row.uri, filename=_file_name(row.billrun_id, row.uri), size=row.bytes, media_type=MEDIA_TYPES[kind]
        )

    return resolve


for _kind in MEDIA_TYPES:
    links.register(_kind, _artifact_resolver(_kind))
