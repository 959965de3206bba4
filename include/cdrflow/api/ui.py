"""The cdrflow page in the Airflow UI: what needs an operator's attention, and the forms to act.

Served by the same FastAPI application as the seed APIs, under ``<mount>/operator/`` (``/cdr``
in Airflow's API server: ``/cdr/operator/``), and shown inside Airflow's UI as the "cdrflow"
entry of its menu (``plugins/cdrflow_api.py``, an ``external_views`` iframe). Server-rendered
HTML (Jinja2 templates in ``ui/templates``), no build step; the only script is the trigger
form's (:mod:`cdrflow.api.ui_triggers` says why).

Pages: the overview (files by status per carrier over the last days, files that need
attention with their reasons, the top rejection reasons), the files list, a file's page (its
registry row, processing log and quarantine: each rejected line as it was, with the checks it
failed; and its Great Expectations Data Docs page), the delivery calendar (30 days per
carrier, gaps marked for ``delivery: daily`` carriers), billing runs with their invoice links, report requests with their links, and the
trigger form. Who may see them: :mod:`cdrflow.api.ui_access`. Errors answer as small HTML pages
(:mod:`cdrflow.api.errors`, by path).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path as FilePath
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from cdrflow.api import links, ui_data_docs, ui_queries, ui_triggers
from cdrflow.api.deps import Conn, Settings, external_base
from cdrflow.api.errors import ApiError, bad_request, not_found
from cdrflow.api.ui_access import CurrentViewer, Viewer, airflow_root

router = APIRouter(prefix="/operator", include_in_schema=False)

TEMPLATES = FilePath(__file__).with_name("ui") / "templates"
LINK_LIFETIME = timedelta(days=7)  # links handed out on a page: a week, like a bookmark's life
QUARANTINE_PAGE = 200
REPORT_STATUS = {1: "pending", 2: "complete", 3: "failed", 4: "expired"}
MAX_ID = 2**63 - 1

Days = Annotated[int, Query(ge=1, le=366, description="how many days back")]


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _money(amounts: dict[str, Any] | None) -> str:
    return ", ".join(f"{Decimal(str(a)):f} {c}" for c, a in sorted((amounts or {}).items())) or "-"


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
_ENV.filters.update(when=_when, num=_num, money=_money)


def page(request: Request, viewer: Viewer, template: str, title: str, **values: Any) -> HTMLResponse:
    """Render ``template`` with what every page needs: its own base path, Airflow's root (links to
    DAG runs, the REST API the trigger form calls) and the viewer."""
    html = _ENV.get_template(template).render(
        title=title,
        base=base_path(request),
        airflow=airflow_root(request),
        viewer=viewer,
        now=datetime.now(UTC),
        **values,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def base_path(request: Request) -> str:
    """The pages' own root: ``/cdr/operator`` inside Airflow (links stay relative to the host)."""
    return request.scope.get("root_path", "") + router.prefix


def _since(days: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1)


@router.get("", response_class=RedirectResponse)
def root(request: Request) -> RedirectResponse:
    return RedirectResponse(base_path(request) + "/", status_code=307)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, conn: Conn, viewer: CurrentViewer, days: Days = 7) -> HTMLResponse:
    """Files by status per carrier, the files that need attention, the top rejection reasons."""
    since = _since(days)
    table: dict[str, dict[str, Any]] = {}
    for r in ui_queries.status_counts(conn, since):
        row = table.setdefault(r.carrier, {"quarantined": 0, "calls": 0})
        row[r.status] = r.files
        row["quarantined"] += r.quarantined
        row["calls"] += r.calls
    attention = [
        f
        for status in ui_queries.ATTENTION
        for f in ui_queries.files(conn, ui_queries.FileFilter(since, status=status, limit=100))
    ]
    attention.sort(key=lambda f: f.id, reverse=True)
    return page(
        request,
        viewer,
        "overview.html",
        "Overview",
        days=days,
        since=since,
        statuses=ui_queries.STATUSES,
        table=table,
        attention=attention,
        reasons=ui_queries.top_reasons(conn, since),
        reruns=_file_reruns(attention),
        back=base_path(request) + "/",
    )


def _file_reruns(files: list[Any]) -> list[ui_triggers.Rerun]:
    """The re-runs that fit a list of files: reprocess those that can be, accept the failed ones."""
    again = [f.id for f in files if f.status in ("loaded", "failed", "rejected")]
    failed = [f.id for f in files if f.status == "failed"]
    out = [ui_triggers.reprocess(again)] if again else []
    return out + ([ui_triggers.accept(failed)] if failed else [])


@router.get("/files", response_class=HTMLResponse)
def file_list(
    request: Request,
    conn: Conn,
    viewer: CurrentViewer,
    days: Days = 7,
    status: Annotated[str | None, Query(max_length=20)] = None,
    carrier: Annotated[str | None, Query(max_length=100)] = None,
    day: date | None = None,
) -> HTMLResponse:
    """Files newest first, by status, carrier, the last days or one day (UTC)."""
    status = status or None
    carrier = (carrier or "").strip() or None
    if status is not None and status not in ui_queries.STATUSES:
        raise bad_request(f"status: {status!r} is none of {', '.join(ui_queries.STATUSES)}")
    if day is not None:
        since = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        which = ui_queries.FileFilter(since, since + timedelta(days=1), status, carrier)
    else:
        which = ui_queries.FileFilter(_since(days), None, status, carrier)
    found = ui_queries.files(conn, which)
    return page(
        request,
        viewer,
        "files.html",
        "Files",
        files=found,
        days=days,
        day=day,
        status=status,
        carrier=carrier,
        statuses=ui_queries.STATUSES,
        limit=which.limit,
        reruns=_file_reruns(found),
        back=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
    )


def _zone(name: str | None) -> tzinfo:
    """The carrier's time zone (its day is the one the re-run form's day means); UTC if unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


@router.get("/files/{file_id}", response_class=HTMLResponse)
def file_page(
    request: Request,
    conn: Conn,
    viewer: CurrentViewer,
    file_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HTMLResponse:
    """One file: its registry row, its processing log, its quarantine with the failed checks."""
    detail = ui_queries.file_detail(conn, file_id, limit=QUARANTINE_PAGE, offset=offset)
    if detail is None:
        raise not_found(f"no file has id {file_id}")
    f = detail.row
    reruns = []
    if f.status in ("loaded", "failed", "rejected"):
        reruns.append(ui_triggers.reprocess([f.id]))
    if f.status == "failed":
        reruns.append(ui_triggers.accept([f.id]))
    reruns.append(ui_triggers.carrier_day(f.carrier, f.uploaded_date.astimezone(_zone(f.zone)).date()))
    fields = {k: v for k, v in f._mapping.items() if k not in ("processing_log", "reason", "zone")}
    return page(
        request,
        viewer,
        "file.html",
        f"File {f.id}",
        f=f,
        fields=fields,
        detail=detail,
        offset=offset,
        page_size=QUARANTINE_PAGE,
        reruns=reruns,
        back=f"{base_path(request)}/files/{f.id}",
        validation=ui_data_docs.summary(conn, f.id),
    )


@router.get("/files/{file_id}/data-docs", response_class=HTMLResponse)
def data_docs(
    request: Request, conn: Conn, viewer: CurrentViewer, file_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> HTMLResponse:
    """Great Expectations' Data Docs page of the file's validation result (:mod:`cdrflow.api.ui_data_docs`)."""
    html = ui_data_docs.page_html(conn, file_id, home=f"{base_path(request)}/files/{file_id}")
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/calendar", response_class=HTMLResponse)
def calendar(request: Request, conn: Conn, viewer: CurrentViewer, days: Days = 30) -> HTMLResponse:
    """Per carrier, files and calls per UTC day; a day a daily carrier sent nothing is a gap."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    day_list = [first + timedelta(days=i) for i in range(days)]
    carriers = ui_queries.calendar(conn, first, today)
    return page(
        request,
        viewer,
        "calendar.html",
        "Deliveries",
        days=day_list,
        today=today,
        carriers=carriers,
        rerun=ui_triggers.carrier_day,
        back=base_path(request) + "/calendar",
    )


@router.get("/billing", response_class=HTMLResponse)
def billing(request: Request, conn: Conn, viewer: CurrentViewer, settings: Settings) -> HTMLResponse:
    """Billing runs, newest first, with their files as signed links and a re-run of the period."""
    runs, artifacts = ui_queries.billruns(conn)
    api_base = external_base(request, settings)
    expires = datetime.now(UTC).replace(microsecond=0) + LINK_LIFETIME
    files = {
        run_id: [
            (a, links.link_url(api_base, a.kind, str(a.id), expires), a.uri.rstrip("/").rsplit("/", 1)[-1])
            for a in found
        ]
        for run_id, found in artifacts.items()
    }

    def period(r: Any) -> str:
        return r.period_start.isoformat() if r.kind == "daily" else f"{r.period_start:%Y-%m}"

    reruns = {r.id: ui_triggers.billing_period(r.kind, period(r), None if r.scope == "all" else r.scope) for r in runs}
    reratings = {
        r.id: ui_triggers.rerate_period(r.kind, period(r), None if r.scope == "all" else r.scope)
        for r in runs
        if r.status == "closed"
    }
    return page(
        request,
        viewer,
        "billing.html",
        "Billing runs",
        runs=runs,
        files=files,
        reruns=reruns,
        reratings=reratings,
        back=base_path(request) + "/billing",
    )


@router.get("/reports", response_class=HTMLResponse)
def reports(request: Request, conn: Conn, viewer: CurrentViewer, settings: Settings) -> HTMLResponse:
    """Report requests, newest first; a complete one's signed link until it expires."""
    found = ui_queries.report_requests(conn)
    now = datetime.now(UTC)
    api_base = external_base(request, settings)
    rows = [
        {
            "r": r,
            "status": REPORT_STATUS.get(4 if r.status == 2 and r.expires_at <= now else r.status, str(r.status)),
            "url": links.link_url(api_base, "report", str(r.id), r.expires_at)
            if r.status == 2 and r.expires_at > now
            else None,
        }
        for r in found or []
    ]
    return page(request, viewer, "reports.html", "Report requests", available=found is not None, rows=rows)


_FORM_KEYS = ("what", "back")


@router.get("/trigger/{dag_id}", response_class=HTMLResponse)
def trigger_form(request: Request, viewer: CurrentViewer, dag_id: str) -> HTMLResponse:
    """The DAG's trigger form, its fields filled from the query string."""
    form = ui_triggers.FORMS.get(dag_id)
    if form is None:
        raise not_found(f"the cdrflow page has no trigger form for {dag_id!r}")
    values: dict[str, str] = {}
    for name, value in request.query_params.items():
        if name in _FORM_KEYS:
            continue
        if form.field(name) is None:
            raise ApiError(400, f"{dag_id} has no field {name!r}", code="invalid_request")
        values[name] = value
    back = request.query_params.get("back") or ""
    if not back.startswith(base_path(request) + "/"):
        back = ""  # only a page of ours: the form never sends the browser elsewhere
    return page(
        request,
        viewer,
        "trigger.html",
        f"Trigger {dag_id}",
        form=form,
        values=values,
        what=request.query_params.get("what") or f"Trigger {dag_id}",
        back=back,
    )
