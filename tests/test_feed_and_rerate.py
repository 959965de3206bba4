"""The billing feed (seed 004: ids in commit order, ``fromid`` inclusive), rerating (a new
billrun version, old one kept, per-account report, totals equal to rating from scratch), and the
margin views (below-cost destinations).

Calls, decks and accounts are made as in tests/test_billrun.py (Asterisk lines loaded by the loader).
"""

from __future__ import annotations

import csv
import io
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import run_cli
from tests.test_billrun import (  # billing, day: fixtures
    DE,
    UK,
    add_account,
    billing,
    day,
    load,
    master_line,
    one_minute,
    q,
    store_deck,
)

from cdrflow.billing import feed
from cdrflow.billing.billrun import run_billrun
from cdrflow.billing.charging import NO_DECK
from cdrflow.billing.model import Rate, Slot
from cdrflow.billing.rerate import below_cost, rerate
from conftest import add_carrier


def current_totals(engine) -> dict[str, Decimal]:
    return {
        r.account_id: r.amount
        for r in q(
            engine,
            "SELECT account_id, sum(cost) AS amount FROM charges WHERE current AND side = 'sell' "
            "AND unrated_reason IS NULL GROUP BY account_id",
        )
    }


def feed_csv(engine, from_id: int = 0, limit: int | None = None) -> list[dict[str, str]]:
    out = io.StringIO()
    with engine.connect() as conn:
        feed.write_csv(feed.read(conn, from_id, limit), out)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


@pytest.fixture
def two_accounts(billing, store):
    add_carrier(billing, "acme")
    store_deck(billing, "retail", date(2026, 10, 1), (one_minute("44", "0.10", "UK"),))
    add_account(billing, "A1", "retail")
    add_account(billing, "B1", "retail")
    # one file each: the two billruns set cdr_files.billrun of different rows
    load(
        billing, store, [master_line(f"a.{i}", "A1", UK, f"2026-11-01 1{i}:00:00", 30) for i in range(3)], name="a.csv"
    )
    load(
        billing, store, [master_line(f"b.{i}", "B1", UK, f"2026-11-01 1{i}:00:00", 30) for i in range(2)], name="b.csv"
    )
    return billing


def test_feed_ids_follow_commit_order_not_start_order(two_accounts, monkeypatch):
    """A1's billrun starts first (lower charge ids) but commits last: its feed records come after
    B1's, so a client that collected B1's records never finds A1's below them."""
    engine = two_accounts
    real_append = feed.append
    reached, go = threading.Event(), threading.Event()

    def paused_append(conn, billrun_id):
        if threading.current_thread().name == "first":
            reached.set()
            assert go.wait(60)
        return real_append(conn, billrun_id)

    monkeypatch.setattr(feed, "append", paused_append)
    results: dict[str, object] = {}
    first = threading.Thread(
        name="first", target=lambda: results.setdefault("A1", run_billrun(engine, "daily", "2026-11-01", "A1"))
    )
    first.start()
    assert reached.wait(60)  # A1's charges are written, its transaction is not committed
    b = run_billrun(engine, "daily", "2026-11-01", "B1")  # starts later, commits first
    collected = feed_csv(engine)
    assert [r["account"] for r in collected] == ["B1", "B1"]  # A1's are not visible yet
    last = int(collected[-1]["id"])
    go.set()
    first.join(60)
    a = results["A1"]
    charge_ids = dict(q(engine, "SELECT billrun_id, max(id) FROM charges GROUP BY billrun_id"))
    assert charge_ids[a.id] < charge_ids[b.id]  # a sequence (charges.id) would put A1 first
    later = feed_csv(engine, last)  # the client polls again with the last id it collected
    assert [r["account"] for r in later] == ["B1", "A1", "A1", "A1"]
    assert all(int(r["id"]) > last for r in later[1:])
    ids = [int(r["id"]) for r in feed_csv(engine)]
    assert ids == sorted(ids) and len(ids) == 5


def test_feed_records_and_from_id_inclusive(billing, store, warehouse_url):
    add_carrier(billing, "acme")
    mobile = Rate("4479", "UK mobile", (Slot(0, Decimal("0.30"), 60, 60),), call_type="MG")
    store_deck(billing, "retail", date(2026, 10, 1), (one_minute("44", "0.10", "UK"), mobile))
    add_account(billing, "A1", "retail", timezone="Australia/Sydney")
    with billing.begin() as conn:
        conn.execute(text("UPDATE accounts SET billing_group = 'north' WHERE account_id = 'A1'"))
    load(
        billing,
        store,
        [
            master_line("1", "A1", UK, "2026-10-31 20:00:00", 61),  # 07:00 on 1 November in Sydney
            master_line("2", "A1", "447911123456", "2026-10-31 21:00:00", 10),
            master_line("3", "A1", UK, "2026-10-31 22:00:00", 0),  # unanswered: a record at 0
            master_line("4", "A1", "999", "2026-10-31 23:00:00", 10),  # unrated: no record
        ],
    )
    run_billrun(billing, "daily", "2026-11-01")
    rows = feed_csv(billing)
    assert len(rows) == 3
    one, two, three = rows
    assert list(one) == list(feed.COLUMNS)
    assert (one["date"], one["datetime"], one["billing_period"], one["billing_group"]) == (
        "2026-11-01", "2026-11-01 07:00:00", "2026-11-01", "north",
    )  # fmt: skip
    assert (one["seconds"], one["billed_seconds"], one["to"], one["cost"], one["currency"]) == (
        "61", "120", UK, "0.2000", "EUR",
    )  # fmt: skip
    assert (one["type"], one["sub_type"], one["description"], one["record"]) == (
        "I",
        "I",
        "International Calls",
        "charge",
    )
    assert (two["type"], two["sub_type"], two["description"], two["cost"]) == (
        "M",
        "MG",
        "Calls to Mobile GSM",
        "0.3000",
    )
    assert three["cost"] == "0.0000" and three["seconds"] == "0"
    ids = [int(r["id"]) for r in rows]
    assert [int(r["id"]) for r in feed_csv(billing, ids[1])] == ids[1:]  # fromid inclusive
    assert [int(r["id"]) for r in feed_csv(billing, ids[2])] == ids[2:]
    assert feed_csv(billing, ids[2] + 1) == []  # header only
    assert [int(r["id"]) for r in feed_csv(billing, 0, limit=2)] == ids[:2]

    env = {"CDRFLOW_DATABASE_URL": warehouse_url}
    done = run_cli("feed", "--from-id", str(ids[1]), env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ",".join(feed.COLUMNS) and [line.split(",")[0] for line in lines[1:]] == [
        str(i) for i in ids[1:]
    ]
    limited = run_cli("feed", "--from-id", "0", "--limit", "1", env=env)
    assert limited.returncode == 0 and len(limited.stdout.splitlines()) == 2
    empty = run_cli("feed", "--from-id", str(ids[2] + 1), env=env)
    assert empty.stdout.splitlines() == [",".join(feed.COLUMNS)]


def test_rerating_after_a_price_change_equals_rating_from_scratch(billing, day):
    first = run_billrun(billing, "daily", "2026-11-01")
    old_lines = q(billing, "SELECT * FROM invoice_lines WHERE billrun_id = :i ORDER BY 2, 4", i=first.id)
    charged = q(billing, "SELECT id, cost FROM charges ORDER BY id")
    collected = feed_csv(billing)
    # the price list changes for the same day (a later version wins a tie of dates),
    # and the deck of account NODECK is imported at last: its unrated call is retried
    store_deck(
        billing,
        "retail",
        date(2026, 10, 1),
        (one_minute("44", "0.30", "UK"), one_minute("49", "0.06", "DE", "0.01", 1)),
    )
    store_deck(billing, "never-imported", date(2026, 10, 1), (one_minute("44", "1.00", "UK"),))
    done = rerate(billing, "daily", "2026-11-01")
    run = done.billrun
    assert (run.version, run.status, run.scope) == (2, "closed", "all")
    assert done.replaced == first.calls == 11
    # the old billrun, its invoice and its charges are kept (only `current` turned off)
    assert q(billing, "SELECT status, version FROM billruns WHERE id = :i", i=first.id) == [("closed", 1)]
    assert q(billing, "SELECT * FROM invoice_lines WHERE billrun_id = :i ORDER BY 2, 4", i=first.id) == old_lines
    assert [
        (r.id, r.cost) for r in q(billing, "SELECT id, cost FROM charges WHERE id <= :m ORDER BY id", m=charged[-1].id)
    ] == [(r.id, r.cost) for r in charged]
    assert q(billing, "SELECT count(*) FROM charges WHERE billrun_id = :i AND current", i=first.id) == [(0,)]
    # the report per account: UK calls of A1 (0.2000 twice at 0.10 -> 0.6000 at 0.30), NODECK rated now
    changes = {c.account_id: (c.old, c.new, c.difference) for c in done.changes}
    assert changes["A1"] == (Decimal("0.4400"), Decimal("1.2400"), Decimal("0.8000"))
    assert changes["TOKYO"] == (Decimal("0.1000"), Decimal("0.3000"), Decimal("0.2000"))
    assert changes["NODECK"] == (Decimal("0"), Decimal("1.0000"), Decimal("1.0000"))
    assert run.unrated.get(NO_DECK) == 1  # STRANGER still has no deck: retried, still unrated
    after = current_totals(billing)
    assert run.totals == {"EUR": sum(after.values())}
    # the feed: earlier records untouched; a reversal and a new record per re-rated collected call
    assert feed_csv(billing)[: len(collected)] == collected
    appended = feed_csv(billing, int(collected[-1]["id"]) + 1)
    assert [r["record"] for r in appended].count("reversal") == len(collected)
    by_account: dict[str, Decimal] = {}
    for r in feed_csv(billing):
        by_account[r["account"]] = by_account.get(r["account"], Decimal(0)) + Decimal(r["cost"])
    assert by_account == after

    # from scratch: the same calls, the same decks, no history
    with billing.begin() as conn:
        conn.execute(text("TRUNCATE billing_feed, invoice_lines, charges, billruns CASCADE"))
    scratch = run_billrun(billing, "daily", "2026-11-01")
    assert current_totals(billing) == after and scratch.totals == run.totals


def test_rerate_with_a_deck_version_and_one_account(billing, day):
    run_billrun(billing, "daily", "2026-11-01")
    before = current_totals(billing)
    v1 = q(billing, "SELECT id FROM rate_deck_versions WHERE deck = 'retail' AND version = 1")[0][0]
    v2 = q(billing, "SELECT id FROM rate_deck_versions WHERE deck = 'retail' AND version = 2")[0][0]
    done = rerate(billing, "daily", "2026-11-01", account="A1", deck_version=v2)  # UK at 0.20
    assert done.billrun.scope == "A1" and done.billrun.version == 1
    assert [(c.account_id, c.old, c.new) for c in done.changes] == [("A1", Decimal("0.4400"), Decimal("0.8400"))]
    assert current_totals(billing)["TOKYO"] == before["TOKYO"]  # not in scope
    back = rerate(billing, "daily", "2026-11-01", account="A1", deck_version=v1)
    assert back.billrun.version == 2 and current_totals(billing) == before


def test_margin_views_and_a_destination_sold_below_cost(billing, store, warehouse_url):
    add_carrier(billing, "tel", config={"buy_deck": "tel_buy"})
    store_deck(
        billing,
        "retail",
        date(2026, 10, 1),
        (one_minute("44", "0.10", "UK"), one_minute("49", "0.06", "DE", "0.01", 1)),
    )
    buy = (one_minute("44", "0.04", "UK", step=1), one_minute("49", "0.02", "DE", step=1))
    store_deck(billing, "tel_buy", date(2026, 10, 1), buy, kind="buy")
    add_account(billing, "A1", "retail", cycle="monthly")
    load(
        billing,
        store,
        [
            master_line("5.1", "A1", UK, "2026-11-03 10:00:00", 90),
            master_line("5.2", "A1", DE, "2026-11-03 11:00:00", 30),
        ],
        carrier="tel",
    )
    run = run_billrun(billing, "monthly", "2026-11")
    margins = {r.destination: r for r in q(billing, "SELECT * FROM call_margins")}
    assert (margins["UK"].sell_cost, margins["UK"].buy_cost, margins["UK"].margin) == (
        Decimal("0.2000"), Decimal("0.0600"), Decimal("0.1400"),
    )  # fmt: skip
    assert margins["DE"].margin == Decimal("0.0400") - Decimal("0.0100")
    with billing.connect() as conn:
        assert below_cost(conn, run.id) == []
    per_destination = q(billing, "SELECT destination, calls, margin FROM destination_margins ORDER BY 1")
    assert per_destination == [("DE", 1, Decimal("0.0300")), ("UK", 1, Decimal("0.1400"))]
    assert q(billing, "SELECT account_id, amount FROM invoices WHERE billrun_id = :i", i=run.id) == [
        ("A1", Decimal("0.2400"))
    ]
    assert q(billing, "SELECT count(*) FROM charge_lines WHERE current AND callee_number = :n", n=UK) == [(2,)]

    # the vendor raises the UK: a rerating of the carrier's calls lists it as sold below cost
    store_deck(billing, "tel_buy", date(2026, 10, 1), (one_minute("44", "0.30", "UK", step=1), buy[1]), kind="buy")
    env = {"CDRFLOW_DATABASE_URL": warehouse_url}
    done = run_cli("bill", "rerate", "--kind", "monthly", "--period", "2026-11", "--carrier", "tel", env=env)
    assert done.returncode == 0, done.stderr
    assert "destinations sold below cost: 1" in done.stdout
    assert "UK (I): 1 call(s), sold 0.2000, bought 0.4500, margin -0.2500 EUR" in done.stdout
    assert "version 2" in done.stdout and "A1" in done.stdout and "0.2400" in done.stdout
    new = q(billing, "SELECT max(id) FROM billruns")[0][0]
    assert q(billing, "SELECT destination, margin FROM below_cost_destinations WHERE billrun_id = :i", i=new) == [
        ("UK", Decimal("-0.2500"))
    ]
    again = run_cli("bill", "run", "--kind", "monthly", "--period", "2026-11", env=env)
    # nothing new to charge: the last closed run (the rerating) is shown, with its below-cost list
    assert again.returncode == 0 and "nothing new to charge" in again.stdout
    assert "destinations sold below cost: 1" in again.stdout


def test_the_readme_queries_for_analysts_run(billing, day):
    run_billrun(billing, "daily", "2026-11-01")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("## Billing for analysts", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    statements = [s for s in block.split(";") if s.strip()]
    assert len(statements) == 6
    with billing.connect() as conn:
        for statement in statements:
            conn.execute(text(statement)).all()
