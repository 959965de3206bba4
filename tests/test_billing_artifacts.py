"""A billrun's files (issue 11, step 3): an invoice CSV per account and a billrun summary in the
artifact store, recorded in billrun_artifacts; the completeness check before a period closes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import run_cli
from tests.test_billrun import UK, add_account, billing, day, load, master_line, q

from cdrflow.billing import completeness
from cdrflow.billing.artifacts import INVOICE_COLUMNS, ArtifactStore, ArtifactStoreUnavailable, write_artifacts
from cdrflow.billing.billrun import run_billrun
from cdrflow.intake.registry import register_file
from conftest import add_carrier


def rows_of(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_invoices_and_summary_are_written_and_recorded(billing, day, tmp_path):
    run = run_billrun(billing, "daily", "2026-11-01")
    store = ArtifactStore((tmp_path / "artifacts").as_uri())
    written = write_artifacts(billing, run.id, store)
    assert [(a.kind, a.account_id) for a in written] == [
        ("summary", None),
        ("invoice", "A1"),
        ("invoice", "EARLY"),
        ("invoice", "NODECK"),
        ("invoice", "TOKYO"),
    ]  # STRANGER is no configured account: its call is in the summary, on no invoice
    folder = tmp_path / "artifacts" / "billruns" / "daily" / "2026-11-01" / "all" / f"billrun-{run.id}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "invoice-A1.csv",
        "invoice-EARLY.csv",
        "invoice-NODECK.csv",
        "invoice-TOKYO.csv",
        "summary.json",
    ]
    for a in written:  # what is recorded is what is there
        data = Path(a.uri.removeprefix("file://")).read_bytes()
        assert (len(data), hashlib.sha1(data).hexdigest()) == (a.bytes, a.sha1)
    assert q(billing, "SELECT count(*) FROM billrun_artifacts WHERE billrun_id = :i", i=run.id)[0][0] == 5

    rows = rows_of(folder / "invoice-A1.csv")
    assert list(rows[0]) == list(INVOICE_COLUMNS)
    lines = [r for r in rows if r["record"] == "line"]
    totals = [r for r in rows if r["record"] == "total"]
    charges = [r for r in rows if r["record"] == "charge"]
    assert [(r["destination"], r["calls"], r["amount"]) for r in lines] == [
        ("DE", "1", "0.0400"),
        ("UK", "3", "0.4000"),
    ]
    assert [(r["currency"], r["calls"], r["amount"]) for r in totals] == [("EUR", "4", "0.4400")]
    # the invoice total is the sum of its lines and of its rated calls' rounded costs, to the cent
    assert sum(Decimal(r["amount"]) for r in charges if r["amount"]) == Decimal(totals[0]["amount"])
    assert len(charges) == 7  # the 7 charged calls of A1 on 1 November, unrated ones with their reason
    assert sorted(r["unrated_reason"] for r in charges if r["unrated_reason"]) == [
        "billing seconds missing",
        "no prefix match",
        "number not ratable",
    ]
    first = charges[0]
    assert (first["start_time"], first["number"], first["prefix"], first["billed_seconds"], first["amount"]) == (
        "2026-11-01T10:00:00+00:00",
        UK,
        "44",
        "120",
        "0.2000",
    )

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["billrun"]["id"] == run.id and summary["billrun"]["totals"] == {"EUR": "0.5400"}
    assert summary["billrun"]["missing_carriers"] == {}
    by_account = {a["account_id"]: a for a in summary["accounts"]}
    assert by_account["A1"]["totals"] == {"EUR": "0.4400"} and by_account["A1"]["unrated"] == 3
    assert by_account["A1"]["invoice"]["uri"] == written[1].uri
    assert summary["unassigned_calls"] == {"STRANGER": 1}
    assert summary["files"] == [day]

    # written again: the same bytes at the same place, still one row per file
    again = write_artifacts(billing, run.id, store, again=True)
    assert [(a.uri, a.sha1) for a in again] == [(a.uri, a.sha1) for a in written]
    assert q(billing, "SELECT count(*) FROM billrun_artifacts WHERE billrun_id = :i", i=run.id)[0][0] == 5
    assert write_artifacts(billing, run.id, store) == written  # found, not written


def test_a_late_file_gets_its_own_invoice_files(billing, day, store, tmp_path):
    first = run_billrun(billing, "daily", "2026-11-01")
    artifacts = ArtifactStore((tmp_path / "a").as_uri())
    write_artifacts(billing, first.id, artifacts)
    load(billing, store, [master_line("9.1", "A1", UK, "2026-11-01 09:00:00", 60)], name="late.csv")
    late = run_billrun(billing, "daily", "2026-11-01")
    written = write_artifacts(billing, late.id, artifacts)
    assert [(a.kind, a.account_id) for a in written] == [("summary", None), ("invoice", "A1")]
    rows = rows_of(Path(written[1].uri.removeprefix("file://")))
    assert [(r["record"], r["amount"]) for r in rows] == [("line", "0.1000"), ("total", "0.1000"), ("charge", "0.1000")]


def test_an_unusable_store_is_one_line_naming_it(billing, day, tmp_path):
    run = run_billrun(billing, "daily", "2026-11-01")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArtifactStoreUnavailable, match=f"artifact store file://{blocker}/x is unavailable"):
        write_artifacts(billing, run.id, ArtifactStore((blocker / "x").as_uri()))
    assert q(billing, "SELECT count(*) FROM billrun_artifacts")[0][0] == 0


def test_cli_bill_run_says_where_the_invoices_are(billing, day, warehouse_url, tmp_path):
    env = {"CDRFLOW_DATABASE_URL": warehouse_url, "CDRFLOW_ARTIFACT_STORE": (tmp_path / "art").as_uri()}
    out = run_cli("bill", "run", "--kind", "daily", "--period", "2026-11-01", env=env)
    assert out.returncode == 0, out.stderr
    run_id = q(billing, "SELECT max(id) FROM billruns")[0][0]
    folder = f"{(tmp_path / 'art').as_uri()}/billruns/daily/2026-11-01/all/billrun-{run_id}/"
    assert f"invoice files: 4 (one CSV per account) and the summary, in {folder}" in out.stdout
    assert "invoice-A1.csv" in out.stdout and "summary.json" in out.stdout
    again = run_cli("bill", "run", "--kind", "daily", "--period", "2026-11-01", env=env)  # nothing new
    assert again.returncode == 0, again.stderr
    assert f"in {folder}" in again.stdout


# -- completeness --------------------------------------------------------------------------------

H = timedelta(hours=1)


def test_schedules_and_previous_periods():
    assert completeness.cron("daily", 2 * H) == "0 2 * * *"
    assert completeness.cron("monthly", 2 * H) == "0 2 1 * *"
    assert completeness.cron("monthly", 26.5 * H) == "30 2 2 * *"
    run_at = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    assert completeness.previous_period("daily", run_at, 2 * H) == "2026-11-01"
    assert completeness.previous_period("monthly", datetime(2026, 12, 1, 2, tzinfo=UTC), 2 * H) == "2026-11"


def test_grace_and_deadline_settings(monkeypatch):
    monkeypatch.setenv("CDRFLOW_BILLING_GRACE_HOURS", "0.5")
    monkeypatch.setenv("CDRFLOW_BILLING_DEADLINE_HOURS", "12")
    assert (completeness.grace(), completeness.deadline()) == (timedelta(minutes=30), 12 * H)
    monkeypatch.setenv("CDRFLOW_BILLING_GRACE_HOURS", "two")
    with pytest.raises(Exception, match="CDRFLOW_BILLING_GRACE_HOURS='two'"):
        completeness.grace()


def test_a_missing_carrier_is_waited_for_until_the_deadline_then_named(billing, store):
    engine = billing
    add_carrier(engine, "acme")
    add_carrier(engine, "kazoo", "kazoo_json")  # delivery daily, nothing delivered
    add_carrier(engine, "monthly", "asterisk_csv", delivery="monthly")
    add_carrier(engine, "free", "asterisk_csv", billable=False)
    add_account(engine, "NY", "retail", timezone="America/New_York")
    acme_file = load(engine, store, [master_line("1.1", "NY", UK, "2026-11-01 10:00:00", 60)])
    with engine.begin() as conn:  # as if it came that evening (a file counts for its day and the one before)
        conn.execute(text("UPDATE cdr_files SET uploaded_date = '2026-11-01 20:00+00' WHERE id = :i"), {"i": acme_file})
    start, end = date(2026, 11, 1), date(2026, 11, 2)
    ends = datetime(2026, 11, 2, 5, tzinfo=UTC)  # midnight in New York

    def at(now: datetime) -> completeness.Check:
        return completeness.check(engine, "daily", start, end, None, now, 2 * H, 6 * H)

    early = at(ends)  # New York's day has ended, but not its grace
    assert not early.ready and early.closes_at == ends + 2 * H
    waiting = at(ends + 3 * H)
    assert not waiting.ready and waiting.missing == {"kazoo": ["2026-11-01"]}
    assert "waiting until 2026-11-02 13:00 UTC for: kazoo (2026-11-01)" in waiting.message
    late = at(ends + 8 * H)
    assert late.ready and late.missing == {"kazoo": ["2026-11-01"]}
    assert "missing: kazoo (2026-11-01)" in late.message

    # a file from kazoo registered the day after counts as delivered, even with no calls in it
    reg = register_file(engine, store, io.BytesIO(b"[]"), file_name="empty.json", carrier="kazoo", file_source="sftp")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE cdr_files SET uploaded_date = '2026-11-02 01:00+00' WHERE id = :i"), {"i": reg.file_id}
        )
    now_ready = at(ends + 2 * H)
    assert now_ready.ready and now_ready.missing == {}
    # a monthly run also wants the monthly carrier's file, and every day of the daily ones
    with engine.connect() as conn:
        month = completeness.missing_deliveries(conn, "monthly", date(2026, 11, 1), date(2026, 12, 1))
    assert month["monthly"] == ["the month 2026-11"]
    assert len(month["acme"]) == 29 and "2026-11-01" not in month["acme"]
    assert "free" not in month


def test_record_missing_keeps_the_carriers_on_the_billrun(billing, day):
    run = run_billrun(billing, "daily", "2026-11-01")
    completeness.record_missing(billing, run.id, {"kazoo": ["2026-11-01"]})
    assert q(billing, "SELECT missing_carriers FROM billruns WHERE id = :i", i=run.id)[0][0] == {
        "kazoo": ["2026-11-01"]
    }
