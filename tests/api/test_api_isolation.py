"""Account isolation on every route, as one table: account 1001's token against each of account
1002's records. A foreign account in a path answers 401 (as Kazoo does); a foreign record's id
answers 404, exactly as an id that does not exist; lists never show a foreign record. The
records are made by the real code (loader, billrun, registry, report requests)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from tests.api.conftest import auth
from tests.api.test_api_billing import runs
from tests.test_billrun import billing

from cdrflow.api.kazoo import to_gregorian
from cdrflow.intake.registry import register_file
from cdrflow.reports import requests

pytestmark = pytest.mark.integration
DAYS = {
    "created_from": to_gregorian(datetime(2026, 11, 1, tzinfo=UTC)),
    "created_to": to_gregorian(datetime(2026, 11, 3, tzinfo=UTC)),
    "paginate": "false",
}


@pytest.fixture
def foreign(api, api_engine, runs, store, make_token) -> dict:
    """1002's records (a file it uploaded, a CDR, a report request, a billrun of its own) and
    1001's and the operator's headers."""
    engine = api_engine
    upload = register_file(
        engine, store, io.BytesIO(b"1002's own bytes\n"), file_name="b.csv", carrier="acme",
        file_source="upload", account_id="1002",
    )  # fmt: skip
    new = requests.validate({"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-02T00:00:00Z"})
    with engine.begin() as conn:
        report = requests.create(conn, new, "1002").id
    operator = auth(make_token(None))
    listing = api.get("/v2/accounts/1002/cdrs", headers=operator, params=DAYS)
    cdr = next(d["id"] for d in listing.json()["data"])
    return {
        "file": upload.file_id, "cdr": cdr, "report": report, "billrun": runs["b_only"],
        "mine": auth(make_token("1001")), "operator": operator,
    }  # fmt: skip


ROUTES = [
    # (method, path, expected answer for 1001's token)
    ("GET", "/backend/api/v1/CDRFiles/{file}", 404),
    ("GET", "/v1/accounts/1002/cdrs", 401),
    ("GET", "/v2/accounts/1002/cdrs", 401),
    ("GET", "/v2/accounts/1002/users/u1/cdrs", 401),
    ("GET", "/v2/accounts/1002/cdrs/{cdr}", 401),
    ("GET", "/v1/accounts/1001/cdrs/{cdr}", 404),
    ("GET", "/v2/accounts/1001/cdrs/{cdr}", 404),
    ("GET", "/reporting/cdr_requests/{report}", 404),
    ("GET", "/v1/reporting/cdr_requests/{report}", 404),
    ("DELETE", "/reporting/cdr_requests/{report}", 404),
    ("GET", "/billing/billruns/{billrun}", 404),
    ("GET", "/billing/feed?account=1002", 401),
]


@pytest.mark.parametrize(("method", "path", "status"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_a_foreign_record_is_refused(api: httpx.Client, foreign, method, path, status):
    url = path.format(**foreign)
    refused = api.request(method, url, headers=foreign["mine"])
    assert refused.status_code == status, refused.text
    # the operator reaches the same record (so the refusal is about the account, not the id)
    if "1001" not in url and method == "GET":
        assert api.request(method, url, headers=foreign["operator"]).status_code == 200


def test_lists_never_show_a_foreign_record(api: httpx.Client, api_engine, foreign):
    mine = foreign["mine"]
    files = api.get("/backend/api/v1/CDRFiles/", headers=mine).json()
    assert str(foreign["file"]) not in {f["id"] for f in files}
    reports = api.get("/reporting/cdr_requests", headers=mine).json()
    assert foreign["report"] not in {r["id"] for r in reports}
    billruns = api.get("/billing/billruns", headers=mine).json()["billruns"]
    assert foreign["billrun"] not in {b["id"] for b in billruns}
    cdrs = api.get("/v2/accounts/1001/cdrs", headers=mine, params=DAYS).json()
    assert foreign["cdr"] not in {d["id"] for d in cdrs["data"]} and cdrs["data"]
    feed = api.get("/billing/feed", headers=mine).text
    assert "1002" not in feed and "1001" in feed
    with api_engine.connect() as conn:  # the refused DELETE deleted nothing
        assert conn.execute(text("SELECT count(*) FROM report_requests")).scalar_one() == 1
