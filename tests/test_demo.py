"""The main job (`make demo`): three carriers, three formats, collected and loaded by Airflow."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import create_engine, text
from tests.servers import api as api_servers

from conftest import run_cli


def test_demo_collects_three_formats_through_airflow_and_spots_the_resent_file(tmp_path, new_database):
    url = new_database()
    state = tmp_path / "state"
    env = {"CDRFLOW_STATE_DIR": str(state), "CDRFLOW_DATABASE_URL": url}
    out = run_cli("demo", env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (
        "cdrflow_collect_bucket success, cdrflow_process success, cdrflow_billing_daily success, "
        "cdrflow_reports success" in out.stdout
    )
    assert "6 files in" in out.stdout
    assert "5 new, 1 duplicate(s); 5698 calls loaded, 2 rows quarantined" in out.stdout
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT file_name, carrier, file_type, file_source, status FROM cdr_files ORDER BY id")
        ).all()
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 5698
        assert conn.execute(text("SELECT count(*) FROM rejected_rows")).scalar() == 2
    assert {r.file_type for r in rows} == {"asterisk_csv", "kazoo_json", "telnyx_csv"}
    assert {r.file_source for r in rows} == {"bucket"}
    assert sorted(r.status for r in rows) == ["duplicate"] + ["loaded"] * 5
    assert [r.file_name for r in rows if r.status == "duplicate"] == ["resent-Master-20261101-a.csv"]
    # the day is billed: per-account totals, rated and unrated by reason, where the invoices are
    assert "Billing: daily billrun 1 of 2026-11-01 (version 1)" in out.stdout
    assert "5698 calls charged: 4898 rated, 800 unrated (no deck for the account: 800)" in out.stdout
    folder = (state / "artifacts" / "billruns" / "daily" / "2026-11-01" / "all" / "billrun-1").as_uri()
    assert f"Invoice files: 4 (one CSV per account) and summary.json in {folder}/\n" in out.stdout
    totals = {
        line.split()[0]: line.split()[-2] for line in out.stdout.splitlines() if line.endswith(" USD") and "  " in line
    }
    with engine.connect() as conn:
        lines = dict(conn.execute(text("SELECT account_id, sum(amount)::text FROM invoice_lines GROUP BY 1")).all())
        costs = dict(
            conn.execute(
                text("SELECT account_id, sum(cost)::text FROM charges WHERE unrated_reason IS NULL GROUP BY 1")
            ).all()
        )
    assert totals == lines == costs  # each account's total is the sum of its rounded call costs
    assert set(totals) == {"acct001", "acct002", "acct003", "a1b2c3d4e5f6"}
    assert sorted(p.name for p in (state / "artifacts" / "billruns").rglob("*.*")) == [
        "invoice-a1b2c3d4e5f6.csv", "invoice-acct001.csv", "invoice-acct002.csv", "invoice-acct003.csv", "summary.json"
    ]  # fmt: skip
    # it ends with links to a report of the day (built by cdrflow_reports) and an invoice, which the
    # API serves on the same state and warehouse without a login, byte for byte
    urls = re.findall(r"curl -fOJ '([^']+)'", out.stdout)
    assert len(urls) == 2 and all(u.startswith("http://localhost:8080/cdr/downloads/") for u in urls)
    server = api_servers.start(url, state)
    try:
        report, invoice = (httpx.get(u.replace("http://localhost:8080/cdr", server.base_url)) for u in urls)
    finally:
        server.stop()
    assert report.status_code == 200 and invoice.status_code == 200
    assert report.content.count(b"\n") == 5698 + 1  # a header and every call of the day
    assert (
        invoice.content
        == (state / "artifacts" / "billruns")
        .joinpath("daily", "2026-11-01", "all", "billrun-1", "invoice-a1b2c3d4e5f6.csv")
        .read_bytes()
    )
    # the upload folders are emptied into processed/ by the collector
    assert [p.name for p in (state / "uploads" / "acme").iterdir()] == ["processed"]

    again = run_cli("demo", env=env, timeout=300)  # same bytes again: everything is a duplicate now
    assert again.returncode == 0, again.stderr
    assert "0 new, 6 duplicate(s); 0 calls loaded" in again.stdout
    assert "Billing: daily billrun 1 of 2026-11-01 (version 1)" in again.stdout  # nothing new to charge
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cdr_files WHERE duplicate_of IS NULL")).scalar() == 5
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 5698
        assert conn.execute(text("SELECT count(*) FROM billruns")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM rate_deck_versions")).scalar() == 1
    engine.dispose()
