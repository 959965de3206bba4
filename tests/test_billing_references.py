"""The references a billrun writes on every charge and feed record (its billrun, its deck
versions) are checked once per run instead of by per-row foreign keys (sql/028): a dangling
reference still cannot appear. The parent cannot be deleted while rows name it, a delete racing a
running billrun waits for it and is then refused, and a run whose deck version vanished fails.

Calls, decks and accounts are made as in tests/test_billrun.py.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from tests.test_billrun import billing, day, q

from cdrflow.billing import feed
from cdrflow.billing.billrun import run_billrun
from cdrflow.billing.charging import DanglingReference, hold_references


def used_version(engine, billrun_id: int) -> int:
    return q(
        engine,
        "SELECT min(deck_version_id) FROM charges WHERE billrun_id = :i AND deck_version_id IS NOT NULL",
        i=billrun_id,
    )[0][0]


def test_a_billrun_or_deck_version_that_charges_name_cannot_be_deleted(billing, day):
    run = run_billrun(billing, "daily", "2026-11-01")
    version = used_version(billing, run.id)
    with pytest.raises(IntegrityError, match=r"charges\.billrun_id refers to it"), billing.begin() as conn:
        conn.execute(text("DELETE FROM billruns WHERE id = :i"), {"i": run.id})
    with pytest.raises(IntegrityError, match=r"charges\.deck_version_id refers to it"), billing.begin() as conn:
        conn.execute(text("DELETE FROM rate_deck_versions WHERE id = :i"), {"i": version})
    # nothing was deleted: every charge and feed record still finds its billrun and deck version
    dangling = q(
        billing,
        "SELECT count(*) FROM charges c LEFT JOIN billruns b ON b.id = c.billrun_id "
        "LEFT JOIN rate_deck_versions v ON v.id = c.deck_version_id "
        "WHERE b.id IS NULL OR (c.deck_version_id IS NOT NULL AND v.id IS NULL)",
    )[0][0]
    orphans = q(
        billing, "SELECT count(*) FROM billing_feed f LEFT JOIN billruns b ON b.id = f.billrun_id WHERE b.id IS NULL"
    )[0][0]
    assert (dangling, orphans) == (0, 0)
    assert q(billing, "SELECT count(*) FROM billing_feed WHERE billrun_id = :i", i=run.id)[0][0] == run.rated


def test_a_charge_that_the_feed_names_or_a_billrun_that_invoice_lines_name_cannot_be_deleted(billing, day):
    """billing_feed.charge_id and invoice_lines.billrun_id lost their per-row foreign keys too
    (sql/029): every record still finds its charge, and the deletes those keys refused are
    refused."""
    run = run_billrun(billing, "daily", "2026-11-01")
    ((charge,),) = q(billing, "SELECT min(charge_id) FROM billing_feed WHERE billrun_id = :i", i=run.id)
    with pytest.raises(IntegrityError, match=r"billing_feed\.charge_id refers to it"), billing.begin() as conn:
        conn.execute(text("DELETE FROM charges WHERE id = :c"), {"c": charge})
    with pytest.raises(IntegrityError, match=r"billing_feed\.charge_id refers to it"), billing.begin() as conn:
        conn.execute(text("UPDATE charges SET id = DEFAULT WHERE id = :c"), {"c": charge})
    # with its feed records and charges gone (in a transaction rolled back), the invoice lines
    # still hold the billrun
    with pytest.raises(IntegrityError, match=r"invoice_lines\.billrun_id refers to it"), billing.begin() as conn:
        conn.execute(text("DELETE FROM billing_feed WHERE billrun_id = :i"), {"i": run.id})
        assert conn.execute(text("DELETE FROM charges WHERE billrun_id = :i"), {"i": run.id}).rowcount > 0
        conn.execute(text("DELETE FROM billruns WHERE id = :i"), {"i": run.id})
    orphans = q(
        billing,
        "SELECT (SELECT count(*) FROM billing_feed f LEFT JOIN charges c ON c.id = f.charge_id WHERE c.id IS NULL), "
        "(SELECT count(*) FROM invoice_lines l LEFT JOIN billruns b ON b.id = l.billrun_id WHERE b.id IS NULL)",
    )[0]
    assert tuple(orphans) == (0, 0)
    assert q(billing, "SELECT count(*) FROM billing_feed WHERE billrun_id = :i", i=run.id)[0][0] == run.rated
    assert q(billing, "SELECT count(*) FROM invoice_lines WHERE billrun_id = :i", i=run.id)[0][0] > 0


def test_a_delete_racing_a_running_billrun_waits_then_is_refused(billing, day, monkeypatch):
    """The run locks its billrun and deck versions (FOR KEY SHARE) before its feed: a delete of
    its deck version issued while it has not committed waits for it, then sees its charges."""
    real_append = feed.append
    reached, go = threading.Event(), threading.Event()

    def paused_append(conn, billrun_id):
        reached.set()
        assert go.wait(60)
        return real_append(conn, billrun_id)

    monkeypatch.setattr(feed, "append", paused_append)
    results: dict[str, object] = {}
    running = threading.Thread(target=lambda: results.setdefault("run", run_billrun(billing, "daily", "2026-11-01")))
    running.start()
    assert reached.wait(60)  # charges written, references held, not committed
    # the version in force on 1 November (the run's charges, not committed yet, name it)
    ((version,),) = q(billing, "SELECT id FROM rate_deck_versions WHERE deck = 'retail' AND version = 1")
    with pytest.raises(OperationalError, match="lock timeout"), billing.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '1s'"))
        conn.execute(text("DELETE FROM rate_deck_versions WHERE id = :v"), {"v": version})
    go.set()
    running.join(60)
    run = results["run"]
    assert used_version(billing, run.id) == version
    with pytest.raises(IntegrityError, match="refers to it"), billing.begin() as conn:
        conn.execute(text("DELETE FROM rate_deck_versions WHERE id = :i"), {"i": version})


def test_the_writer_refuses_charges_naming_a_billrun_or_version_that_is_gone(billing, day):
    run = run_billrun(billing, "daily", "2026-11-01")
    version = used_version(billing, run.id)
    with billing.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE staged (deck_version_id bigint) ON COMMIT DROP"))
        conn.execute(text("INSERT INTO staged VALUES (:v), (NULL)"), {"v": version})
        hold_references(conn, run.id, "staged")  # both exist: held, no error
        with pytest.raises(DanglingReference, match="billrun 987654 was deleted"):
            hold_references(conn, 987654, "staged")
    with billing.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE staged (deck_version_id bigint) ON COMMIT DROP"))
        conn.execute(text("INSERT INTO staged VALUES (:v), (987654)"), {"v": version})
        with pytest.raises(DanglingReference, match=r"deck version\(s\) \[987654\]"):
            hold_references(conn, run.id, "staged")


def test_a_replaced_charge_and_a_corrected_feed_record_cannot_be_deleted(billing, day):
    """charges.replaces and billing_feed.correction_of have no foreign key (sql/031): deleting the
    charge a rerating replaced, or the feed record it corrected, is refused as the keys refused it;
    a charge nothing refers to can still go."""
    from cdrflow.billing.rerate import rerate

    run_billrun(billing, "daily", "2026-11-01")
    v2 = q(billing, "SELECT id FROM rate_deck_versions WHERE deck = 'retail' AND version = 2")[0][0]
    rerate(billing, "daily", "2026-11-01", account="A1", deck_version=v2)
    # an unrated charge has no feed record: only the charge that replaced it refers to it
    ((replaced, replacing),) = q(
        billing,
        "SELECT n.replaces, n.id FROM charges n WHERE n.replaces IS NOT NULL AND n.unrated_reason IS NOT NULL "
        "ORDER BY n.id LIMIT 1",
    )
    ((corrected,),) = q(billing, "SELECT min(correction_of) FROM billing_feed")
    with pytest.raises(IntegrityError, match="charges.replaces refers to it"), billing.begin() as conn:
        conn.execute(text("DELETE FROM charges WHERE id = :c"), {"c": replaced})
    with pytest.raises(IntegrityError, match="billing_feed.correction_of refers to it"), billing.begin() as conn:
        conn.execute(text("DELETE FROM billing_feed WHERE id = :f"), {"f": corrected})
    with billing.begin() as conn:  # nothing refers to the newer charge
        assert conn.execute(text("DELETE FROM charges WHERE id = :c"), {"c": replacing}).rowcount == 1
