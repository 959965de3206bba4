"""Billing outputs over HTTP: billruns (list, filters, paging, one billrun) and their invoice files
through signed links, for the operator and for each account (isolation: 404 for what is not
the account's, its own figures only, never another account's invoice nor the summary).

The billruns are made by the real billing code: calls loaded by the loader, a deck, accounts,
``run_billrun``, ``write_artifacts`` (as tests/test_billing_artifacts.py does)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.api.conftest import auth
from tests.test_billrun import UK, add_account, billing, load, master_line, one_minute, store_deck

from cdrflow.billing.artifacts import ArtifactStore, write_artifacts
from cdrflow.billing.billrun import run_billrun
from conftest import add_carrier

pytestmark = pytest.mark.integration


@pytest.fixture
def runs(api_engine, billing, store, tmp_path):
    """Billrun ``both`` (daily 2026-11-01, scope all) charged 1001 (3 calls, one unrated) and 1002
    (1 call); ``b_only`` (daily 2026-11-02, scope 1002) charged 1002 alone; ``failed`` failed."""
    engine = billing
    add_carrier(engine, "acme")
    store_deck(engine, "retail", date(2026, 10, 1), (one_minute("44", "0.10", "UK"),))
    add_account(engine, "1001", "retail")
    add_account(engine, "1002", "retail")
    lines = [
        master_line("a1", "1001", UK, "2026-11-01 10:00:00", 61),  # 0.2000
        master_line("a2", "1001", UK, "2026-11-01 11:00:00", 30),  # 0.1000
        master_line("a3", "1001", "999123", "2026-11-01 12:00:00", 10),  # no prefix match
        master_line("b1", "1002", UK, "2026-11-01 10:30:00", 125),  # 0.3000
        master_line("b2", "1002", UK, "2026-11-02 10:30:00", 5),  # 0.1000, the next day
    ]
    load(engine, store, lines)
    artifacts = ArtifactStore((tmp_path / "artifacts").as_uri())
    both = run_billrun(engine, "daily", "2026-11-01")
    b_only = run_billrun(engine, "daily", "2026-11-02", "1002")
    for run in (both, b_only):
        write_artifacts(engine, run.id, artifacts)
    with engine.begin() as conn:
        failed = conn.execute(
            text(
                "INSERT INTO billruns (kind, period_start, period_end, scope, version, status, finished_at, error) "
                "VALUES ('monthly', '2026-11-01', '2026-12-01', 'all', 1, 'failed', now(), 'the deck was missing') "
                "RETURNING id"
            )
        ).scalar_one()
    return {"both": both.id, "b_only": b_only.id, "failed": failed}


@pytest.fixture
def tokens(runs, make_token):
    return {"operator": auth(make_token(None)), "1001": auth(make_token("1001")), "1002": auth(make_token("1002"))}


def listed(api, headers, **params) -> list[int]:
    response = api.get("/billing/billruns", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [b["id"] for b in response.json()["billruns"]]


def test_the_operator_lists_every_billrun_newest_first(api, runs, tokens):
    op = tokens["operator"]
    assert listed(api, op) == [runs["failed"], runs["b_only"], runs["both"]]
    body = api.get("/billing/billruns", headers=op, params={"per_page": 1, "page": 2}).json()
    assert (body["total"], body["page"], body["per_page"]) == (3, 2, 1)
    assert [b["id"] for b in body["billruns"]] == [runs["b_only"]]
    assert listed(api, op, status="failed") == [runs["failed"]]
    assert listed(api, op, kind="daily") == [runs["b_only"], runs["both"]]
    assert listed(api, op, period="2026-11-02") == [runs["b_only"]]
    assert listed(api, op, period="2026-11") == [runs["failed"], runs["b_only"], runs["both"]]
    assert listed(api, op, period="2026-10") == []
    item = api.get("/billing/billruns", headers=op, params={"kind": "monthly"}).json()["billruns"][0]
    assert (item["period"], item["period_start"], item["period_end"], item["status"]) == (
        "2026-11", "2026-11-01", "2026-12-01", "failed",
    )  # fmt: skip


def test_an_account_lists_only_the_billruns_that_invoiced_it(api, runs, tokens):
    assert listed(api, tokens["1001"]) == [runs["both"]]
    assert listed(api, tokens["1002"]) == [runs["b_only"], runs["both"]]
    body = api.get("/billing/billruns", headers=tokens["1001"]).json()
    assert body["total"] == 1
    item = body["billruns"][0]
    assert item["account_id"] == "1001" and item["totals"] == {"EUR": "0.3000"}  # its own, not the run's 0.6000


def test_the_operator_sees_the_whole_billrun_and_every_file(api, api_engine, runs, tokens):
    response = api.get(f"/billing/billruns/{runs['both']}", headers=tokens["operator"])
    assert response.status_code == 200, response.text
    run = response.json()
    assert (run["kind"], run["period"], run["scope"], run["version"], run["status"]) == (
        "daily", "2026-11-01", "all", 1, "closed",
    )  # fmt: skip
    assert (run["calls"], run["rated"], run["unrated"]) == (4, 3, {"no prefix match": 1})
    assert run["totals"] == {"EUR": "0.6000"} and run["account_id"] is None
    assert run["buy"] == {"rated": 0, "unrated": {}, "totals": {}} and run["missing_carriers"] == {}
    files = {(f["kind"], f["account_id"]): f for f in run["files"]}
    assert set(files) == {("summary", None), ("invoice", "1001"), ("invoice", "1002")}
    summary = api.get(files[("summary", None)]["url"])
    assert summary.status_code == 200 and summary.headers["content-type"].startswith("application/json")
    assert {a["account_id"] for a in summary.json()["accounts"]} == {"1001", "1002"}
    failed = api.get(f"/billing/billruns/{runs['failed']}", headers=tokens["operator"]).json()
    assert failed["error"] == "the deck was missing" and failed["files"] == []


def test_an_account_sees_its_own_figures_and_only_its_invoice(api, runs, tokens):
    run = api.get(f"/billing/billruns/{runs['both']}", headers=tokens["1001"]).json()
    assert run["account_id"] == "1001"
    assert (run["calls"], run["rated"], run["unrated"], run["totals"]) == (
        3, 2, {"no prefix match": 1}, {"EUR": "0.3000"},
    )  # fmt: skip
    assert run["buy"] is None and run["missing_carriers"] is None and run["error"] is None
    assert [(f["kind"], f["account_id"]) for f in run["files"]] == [("invoice", "1001")]
    other = api.get(f"/billing/billruns/{runs['both']}", headers=tokens["1002"]).json()
    assert [(f["kind"], f["account_id"]) for f in other["files"]] == [("invoice", "1002")]
    assert other["totals"] == {"EUR": "0.3000"} and (other["calls"], other["unrated"]) == (1, {})


def test_an_invoice_downloads_byte_exact_through_its_link(api, api_engine, runs, tokens):
    run = api.get(f"/billing/billruns/{runs['both']}", headers=tokens["1001"]).json()
    invoice = run["files"][0]
    with api_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT uri, bytes, sha1 FROM billrun_artifacts WHERE id = :i"), {"i": invoice["id"]}
        ).one()
    kept = Path(stored.uri.removeprefix("file://")).read_bytes()
    response = api.get(invoice["url"])  # no login: the signed link is the credential
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content == kept and hashlib.sha1(response.content).hexdigest() == stored.sha1 == invoice["sha1"]
    assert len(response.content) == stored.bytes == invoice["bytes"]
    assert f'filename="billrun-{runs["both"]}-invoice-1001.csv"' in response.headers["content-disposition"]
    assert b"1002" not in response.content.split(b"\n", 1)[1]  # the other account's calls are not in it
    expires = datetime.fromisoformat(invoice["url_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)


def test_an_account_gets_404_for_another_accounts_billrun(api, runs, tokens):
    foreign = api.get(f"/billing/billruns/{runs['b_only']}", headers=tokens["1001"])
    missing = api.get("/billing/billruns/987654321", headers=tokens["1001"])
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"] == 404
    assert api.get(f"/billing/billruns/{runs['failed']}", headers=tokens["1001"]).status_code == 404
    # the invoice of 1002 in the shared billrun: in no response 1001 gets, and its link is 1002's only
    shown = api.get(f"/billing/billruns/{runs['both']}", headers=tokens["1001"]).json()["files"]
    assert all(f["account_id"] == "1001" for f in shown)


def test_a_link_to_a_removed_file_answers_404(api, api_engine, runs, tokens):
    url = api.get(f"/billing/billruns/{runs['both']}", headers=tokens["1001"]).json()["files"][0]["url"]
    assert api.get(url).status_code == 200
    with api_engine.begin() as conn:
        conn.execute(text("DELETE FROM billrun_artifacts WHERE account_id = '1001'"))
    assert api.get(url).status_code == 404
    assert api.get(url[:-3] + "xyz").status_code == 403  # a damaged token


def test_no_token_is_401(api, runs):
    assert api.get("/billing/billruns").status_code == 401
    assert api.get(f"/billing/billruns/{runs['both']}", headers=auth("nope")).status_code == 401


SQL = "1' OR '1'='1"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/billing/billruns", {"kind": "weekly"}),
        ("/billing/billruns", {"kind": SQL}),
        ("/billing/billruns", {"status": "open"}),
        ("/billing/billruns", {"period": "2026-13"}),
        ("/billing/billruns", {"period": "2026-02-30"}),
        ("/billing/billruns", {"period": SQL}),
        ("/billing/billruns", {"period": "2" * 5000}),
        ("/billing/billruns", {"page": "0"}),
        ("/billing/billruns", {"page": "9" * 40}),
        ("/billing/billruns", {"per_page": "1001"}),
        ("/billing/billruns", {"per_page": SQL}),
        ("/billing/billruns/abc", {}),
        ("/billing/billruns/0", {}),
        ("/billing/billruns/" + "9" * 40, {}),
        ("/billing/billruns/1%27%20OR%20%271%27=%271", {}),
    ],
)
def test_bad_parameters_answer_400(api, tokens, path, params):
    response = api.get(path, params=params, headers=tokens["operator"])
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == 400
