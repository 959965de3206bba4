"""The demo's downloads: a report request (seed 001) built by ``cdrflow_reports``, and the links
of it and of an invoice, with a ``curl`` line that fetches them (``make demo``'s last lines).

The links are signed with the state directory's link secret, the one the API server started by
``make airflow`` (or ``cdrflow api serve``) on the same state uses, so they work there as printed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from cdrflow.api import links
from cdrflow.reports import requests

DEFAULT_BASE = "http://localhost:8080/cdr"  # make airflow
INVOICE_DAYS = 30


def api_base() -> str:
    return (os.environ.get("CDRFLOW_API_BASE_URL") or DEFAULT_BASE).rstrip("/")


def request_report(engine: Engine, day: datetime) -> str:
    """An operator's report of the demo day (every account, inbound and outbound, complete and
    incomplete calls), pending until ``cdrflow_reports`` builds it; returns its id."""
    start = day.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=day.tzinfo or UTC)
    new = requests.validate(
        {
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(days=1)).isoformat(),
            "call_types": [1, 2],
            "record_types": [1, 2],
            "report_name": f"demo-{start:%Y-%m-%d}",
        },
        now=start + timedelta(days=2),
    )
    with engine.begin() as conn:
        return requests.create(conn, new, None).id


def downloads(engine: Engine, report_id: str, period: str) -> str:
    """The report's and an invoice's links, as the API serves them, with curl lines."""
    base = api_base()
    lines = [f"Downloads (served by the API: `make airflow`, or `cdrflow api serve --port 8080`; base {base}):"]
    with engine.connect() as conn:
        report = requests.get(conn, report_id, None, every_account=True)
        invoice = conn.execute(
            text(
                "SELECT a.id, a.account_id, a.bytes FROM billrun_artifacts a JOIN billruns b ON b.id = a.billrun_id "
                "WHERE b.kind = 'daily' AND b.period_start = :p AND b.status = 'closed' AND a.kind = 'invoice' "
                "ORDER BY b.version DESC, a.account_id LIMIT 1"
            ),
            {"p": period},
        ).one_or_none()
    if report is not None and report.status == requests.COMPLETE and report.expires_at:
        url = links.link_url(base, "report", report.id, report.expires_at)
        lines += [
            f"  report {report.id} ({report.row_count:,} calls, {report.bytes:,} bytes, until {report.expires_at:%Y-%m-%d}):",
            f"    curl -fOJ '{url}'",
        ]
    else:
        state = "missing" if report is None else f"status {report.status} {report.failure_reason or ''}".strip()
        lines.append(f"  report {report_id}: not complete ({state}; see the Airflow log)")
    if invoice is not None:
        until = datetime.now(UTC) + timedelta(days=INVOICE_DAYS)
        url = links.link_url(base, "invoice", str(invoice.id), until)
        lines += [
            f"  invoice of account {invoice.account_id} ({invoice.bytes:,} bytes, until {until:%Y-%m-%d}):",
            f"    curl -fOJ '{url}'",
        ]
    return "\n".join(lines)
