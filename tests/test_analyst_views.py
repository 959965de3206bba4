"""The analysts' views of sql/022 on a small warehouse built through the project's own paths:
Asterisk Master.csv files registered and loaded by the loader (calls, quarantine, call_days,
file statuses), two daily billruns on a sell and a buy deck (charges). Every expected number is
worked out by hand in the comments next to it.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cdrflow.billing import decks
from cdrflow.billing.billrun import run_billrun
from cdrflow.billing.model import Deck, DeckVersion, Rate, Slot
from cdrflow.config import account_file
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import register_file
from cdrflow.loading.transaction import load_file
from cdrflow.warehouse import accounts
from conftest import add_carrier

UK, DE = "00442071234567", "0301234567"  # by acme's German dial plan: +44 2071234567 (e164), +49 301234567 (national)
FMT = "%Y-%m-%d %H:%M:%S"
EMPTY = (
    "TRUNCATE calls, rejected_rows, cdr_files, carriers, call_days, billing_feed, invoice_lines, charges, billruns, "
    "accounts, rate_decks, rate_deck_versions, rates RESTART IDENTITY CASCADE"
)


def master(uid: str, account: str, src: str, dst: str, start: str, billsec: int, linkedid: str | None = None) -> str:
    """One 21-column Asterisk Master.csv line; 0 billsec is a call nobody answered. ``start`` may
    be text that is no time (a row the parser quarantines)."""
    try:
        t0 = datetime.fromisoformat(start)
        answer = (t0 + timedelta(seconds=5)).strftime(FMT) if billsec else ""
        end, start_text = (t0 + timedelta(seconds=5 + billsec)).strftime(FMT), t0.strftime(FMT)
    except ValueError:
        answer, end, start_text = "", "2026-11-01 10:00:00", start
    fields = [
        account, src, dst, "default", f'"{src}" <{src}>', f"SIP/{src}-01", "SIP/trunk-02", "Dial", f"SIP/trunk/{dst}",
        start_text, answer, end, str(5 + billsec), str(billsec),
        "ANSWERED" if billsec else "NO ANSWER", "DOCUMENTATION", uid, "", "", linkedid or uid, "1",
    ]  # fmt: skip
    return ",".join('"' + f.replace('"', '""') + '"' for f in fields) + "\n"


NEGATIVE = master("9.9", "A1", "100", UK, "2026-11-01 14:00:00", 10).replace('"15","10"', '"-5","10"')

DAY1 = [
    master("1.1", "A1", "100", UK, "2026-11-01 10:00:00", 61),  # UK, 61 s
    master("1.2", "A1", "101", UK, "2026-11-01 11:00:00", 0),  # UK, not answered
    master("1.3", "A1", "100", DE, "2026-11-01 12:00:00", 30),  # DE, 30 s
    master("6.1", "A1", "100", UK, "2026-11-01 13:00:00", 0, "6.1"),  # one call of two legs: the first
    master("6.2", "A1", "100", UK, "2026-11-01 13:00:10", 45, "6.1"),  # ... rings on, this one talks 45 s
    master("4.1", "TOKYO", "200", UK, "2026-11-01 16:00:00", 120),  # 2 November 01:00 in Tokyo
    master("5.1", "TOKYO", "200", UK, "2026-10-31 20:00:00", 30),  # 1 November 05:00 in Tokyo
    master("8.1", "A1", "100", UK, "not a time", 10),  # line 8: quarantined, parse:start_time
    NEGATIVE,  # line 9: quarantined, duration -5 (three checks)
]
DAY2 = [master("7.1", "A1", "100", UK, "2026-11-02 09:00:00", 10)]
BROKEN = [master("8.2", "A1", "100", UK, "not a time", 10), master("8.3", "A1", "100", UK, "nor this", 10)]


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


def register(engine, store, lines: list[str], name: str, received: str, parent: int | None = None) -> int:
    """Register ``lines`` as a file of acme received at ``received`` (UTC), and load it."""
    data = "".join(lines).encode()
    reg = register_file(
        engine, store, io.BytesIO(data), file_name=name, carrier="acme", file_source="sftp", parent_id=parent
    )
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE cdr_files SET uploaded_date = :t WHERE id = :id"), {"t": at(received), "id": reg.file_id}
        )
    if reg.duplicate_of is None and lines:
        load_file(engine, store, reg.file_id)
    return reg.file_id


def deck(engine, name: str, kind: str, uk: str, de: str) -> None:
    rates = (Rate("44", "UK", (Slot(0, Decimal(uk), 60, 60),)), Rate("49", "DE", (Slot(0, Decimal(de), 60, 60),)))
    with engine.begin() as conn:
        decks.store(conn, DeckVersion(Deck(name=name, currency="EUR", kind=kind), date(2026, 10, 1), rates), "test")


def account(engine, account_id: str, timezone: str) -> None:
    entry = {"account_id": account_id, "sell_deck": "retail", "cycle": "daily", "timezone": timezone, "currency": "EUR"}
    with engine.begin() as conn:
        accounts.upsert(conn, account_file.parse_account(entry))


@pytest.fixture(scope="module")
def wh(warehouse_url: str, tmp_path_factory):
    """The warehouse of the module's tests (built once: loading and billing take a few seconds)."""
    engine = create_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(text(EMPTY))
    store = RawStore((tmp_path_factory.mktemp("raw") / "raw").as_uri())
    add_carrier(engine, "acme", reject_threshold=0.5, config={"buy_deck": "acme_buy", "dial_plan": {"country": "DE"}})
    add_carrier(engine, "tel")  # daily, never sends a file
    add_carrier(engine, "mon", delivery="monthly")  # monthly: no daily gaps
    deck(engine, "retail", "sell", uk="0.10", de="0.06")
    deck(engine, "acme_buy", "buy", uk="0.04", de="0.09")  # DE is sold below cost
    account(engine, "A1", "UTC")
    account(engine, "TOKYO", "Asia/Tokyo")
    ids = {"day1": register(engine, store, DAY1, "day1.csv", "2026-11-02 01:00:00")}
    ids["zip"] = register(engine, store, [], "day2.zip", "2026-11-03 00:30:00")  # stands for an unpacked archive
    with engine.begin() as conn:  # (an empty file is registered, not loaded: made to look unpacked)
        conn.execute(text("UPDATE cdr_files SET status = 'loaded' WHERE id = :id"), {"id": ids["zip"]})
    ids["day2"] = register(engine, store, DAY2, "day2.csv", "2026-11-03 01:00:00", parent=ids["zip"])
    ids["broken"] = register(engine, store, BROKEN, "broken.csv", "2026-11-03 03:00:00")
    ids["again"] = register(engine, store, DAY2, "day2-again.csv", "2026-11-04 01:00:00")  # a duplicate
    run_billrun(engine, "daily", "2026-11-01")
    run_billrun(engine, "daily", "2026-11-02")
    yield engine, ids
    with engine.begin() as conn:
        conn.execute(text(EMPTY))
    engine.dispose()


def rows(engine, sql: str) -> list[tuple]:
    """The rows of ``sql`` as tuples, in the order of its SELECT list."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_the_files_loaded_as_the_scenario_says(wh):
    engine, ids = wh
    assert rows(engine, "SELECT id, status FROM cdr_files ORDER BY id") == [
        (ids["day1"], "loaded"),
        (ids["zip"], "loaded"),
        (ids["day2"], "loaded"),
        (ids["broken"], "failed"),  # 2 of 2 rows quarantined: over the threshold
        (ids["again"], "duplicate"),
    ]


def test_traffic_per_carrier_account_and_utc_day(wh):
    engine, _ = wh
    got = rows(
        engine,
        "SELECT account_id, day_zone, calls, answered, billing_seconds, minutes, callers "
        "FROM daily_traffic_between('2026-11-01', '2026-11-02') WHERE carrier = 'acme' ORDER BY account_id",
    )
    assert got == [
        # 1.1, 1.2, 1.3 and the two legs of 6.1 as one call: 4 calls, 3 answered (1.2 did not),
        # 61 + 0 + 30 + 45 = 136 s = 2.27 min, callers 100 and 101
        ("A1", "UTC", 4, 3, 136, Decimal("2.27"), 2),
        ("TOKYO", "UTC", 1, 1, 120, Decimal("2.00"), 1),  # 4.1 (5.1 is 31 October in UTC)
    ]
    assert rows(engine, "SELECT day, account_id, calls FROM daily_traffic WHERE carrier = 'acme' ORDER BY 1, 2") == [
        (date(2026, 10, 31), "TOKYO", 1),
        (date(2026, 11, 1), "A1", 4),
        (date(2026, 11, 1), "TOKYO", 1),
        (date(2026, 11, 2), "A1", 1),  # 7.1
    ]


def test_traffic_in_the_accounts_local_days(wh):
    engine, _ = wh
    got = rows(
        engine,
        "SELECT account_id, day, day_zone, calls, billing_seconds "
        "FROM daily_traffic_between('2026-11-01', '2026-11-02', local_days => true) ORDER BY account_id",
    )
    assert got == [
        ("A1", date(2026, 11, 1), "UTC", 4, 136),
        ("TOKYO", date(2026, 11, 1), "Asia/Tokyo", 1, 30),  # 5.1 (05:00 there); 4.1 is Tokyo's 2nd
    ]


def test_asr_and_acd_per_carrier_and_day(wh):
    engine, _ = wh
    got = rows(engine, "SELECT * FROM daily_asr_acd_between('2026-11-01', '2026-11-02')")
    # carrier, day, attempts, answered, asr, answered_seconds, acd_seconds: 5 calls (1.1, 1.2, 1.3,
    # 6.1, 4.1), 4 answered: ASR 4/5; ACD (61 + 30 + 45 + 120) / 4 = 64
    assert got == [("acme", date(2026, 11, 1), 5, 4, Decimal("0.8000"), 256, Decimal("64.00"))]
    assert rows(engine, "SELECT * FROM daily_asr_acd WHERE day = '2026-11-01'") == got


def test_asr_and_acd_per_destination(wh):
    engine, _ = wh
    got = rows(
        engine,
        "SELECT callee_country_code, callee_number_type, attempts, answered, asr, answered_seconds, acd_seconds "
        "FROM daily_asr_acd_by_destination_between('2026-11-01', '2026-11-02') ORDER BY 1",
    )
    assert got == [
        ("44", "e164", 4, 3, Decimal("0.7500"), 226, Decimal("75.33")),  # 1.1, 1.2, 6.1, 4.1: (61 + 45 + 120) / 3
        ("49", "national", 1, 1, Decimal("1.0000"), 30, Decimal("30.00")),  # 1.3
    ]


def test_quarantine_by_reason(wh):
    engine, ids = wh
    got = rows(
        engine,
        "SELECT day, failed_check, rows_rejected, files, example_file_id, example_line_number, example_reason, "
        "example_line FROM quarantine_by_reason WHERE carrier = 'acme' ORDER BY day, failed_check",
    )
    assert [r[:4] for r in got] == [
        (date(2026, 11, 2), "expect_column_pair_values_a_to_be_greater_than_b(duration_seconds,billing_seconds)", 1, 1),
        (date(2026, 11, 2), "expect_column_values_to_be_between(duration_seconds)", 1, 1),
        (date(2026, 11, 2), "expect_column_values_to_be_between(ringing_seconds)", 1, 1),
        (date(2026, 11, 2), "parse:start_time", 1, 1),  # line 8 of day1.csv
        (date(2026, 11, 3), "parse:start_time", 2, 1),  # both lines of broken.csv
    ]
    assert got[1][4:] == (ids["day1"], 9, "expect_column_values_to_be_between(duration_seconds)", NEGATIVE.strip())
    assert got[3][4:6] == (ids["day1"], 8)
    file_id, line, reason, raw = got[4][4:]
    assert (file_id, line, raw) == (ids["broken"], 1, BROKEN[0].strip())
    assert reason.startswith("parse:start_time:") and "not a time" in reason


def test_deliveries_per_carrier_and_day(wh):
    engine, _ = wh
    got = rows(
        engine,
        "SELECT day, files, loaded, failed, rejected, duplicate, pending, archives, calls_loaded, rows_rejected, "
        "calls_duplicate FROM daily_deliveries WHERE carrier = 'acme' ORDER BY day",
    )
    assert got == [
        (date(2026, 11, 2), 1, 1, 0, 0, 0, 0, 0, 7, 2, 0),  # day1.csv: 7 legs loaded, lines 8 and 9 quarantined
        (date(2026, 11, 3), 2, 1, 1, 0, 0, 0, 1, 1, 2, 0),  # day2.zip (apart) with day2.csv, and broken.csv
        (date(2026, 11, 4), 1, 0, 0, 0, 1, 0, 0, 0, 0, 0),  # the duplicate
    ]


def test_delivery_gaps_of_daily_carriers(wh):
    engine, _ = wh
    broken_at = at("2026-11-03 03:00:00")  # acme's last file that is not a duplicate
    assert rows(engine, "SELECT * FROM delivery_gaps('2026-11-01', '2026-11-06')") == [
        # nothing received on the 1st (its 6 legs came on the 2nd), nor on the 4th (a duplicate only) and 5th
        ("acme", date(2026, 11, 1), 6, None),
        ("acme", date(2026, 11, 4), 0, broken_at),
        ("acme", date(2026, 11, 5), 0, broken_at),
    ] + [("tel", date(2026, 11, d), 0, None) for d in range(1, 6)]  # mon delivers monthly: no gap
    with pytest.raises(Exception, match="both days must be given and finite"):
        rows(engine, "SELECT * FROM delivery_gaps('2026-11-01', 'infinity')")


def test_revenue_cost_and_margin_per_day_and_month(wh):
    engine, _ = wh
    got = rows(
        engine,
        "SELECT account_id, day, day_zone, sold_calls, revenue, bought_calls, cost, margin_calls, margin, "
        "calls_below_cost FROM daily_margins WHERE carrier = 'acme' ORDER BY account_id, day",
    )
    d = Decimal
    assert got == [
        # 1.1 (61 s billed 120 s): 0.20 sold, 0.08 bought; 1.2: 0 and 0; 1.3 (30 s billed 60 s): 0.06 sold,
        # 0.09 bought (below cost); 6.2, the billable leg of 6.1 (45 s billed 60 s): 0.10 and 0.04
        ("A1", date(2026, 11, 1), "UTC", 4, d("0.36"), 4, d("0.21"), 4, d("0.15"), 1),
        ("A1", date(2026, 11, 2), "UTC", 1, d("0.10"), 1, d("0.04"), 1, d("0.06"), 0),  # 7.1 (10 s billed 60 s)
        # 5.1 is Tokyo's 1 November (30 s billed 60 s), 4.1 its 2 November (120 s)
        ("TOKYO", date(2026, 11, 1), "Asia/Tokyo", 1, d("0.10"), 1, d("0.04"), 1, d("0.06"), 0),
        ("TOKYO", date(2026, 11, 2), "Asia/Tokyo", 1, d("0.20"), 1, d("0.08"), 1, d("0.12"), 0),
    ]
    monthly = rows(
        engine,
        "SELECT account_id, month, sold_calls, revenue, cost, margin, calls_below_cost FROM monthly_margins "
        "ORDER BY account_id",
    )
    assert monthly == [
        ("A1", date(2026, 11, 1), 5, d("0.46"), d("0.25"), d("0.21"), 1),
        ("TOKYO", date(2026, 11, 1), 2, d("0.30"), d("0.12"), d("0.18"), 0),
    ]


def test_a_margin_counts_only_calls_rated_on_both_sides(wh):
    """A call left without a buy charge: revenue keeps it, cost and margin do not (no buy price,
    no margin), so sold_calls > margin_calls tells the analyst."""
    engine, _ = wh
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(text("UPDATE charges SET current = false WHERE side = 'buy' AND record_key LIKE '7.1%'"))
        got = conn.execute(
            text(
                "SELECT sold_calls, revenue, bought_calls, cost, margin_calls, margin FROM daily_margins "
                "WHERE account_id = 'A1' AND day = '2026-11-02'"
            )
        ).one()
        tx.rollback()
    assert tuple(got) == (1, Decimal("0.10"), 0, Decimal("0"), 0, Decimal("0"))


def test_country_calling_codes(wh):
    """e164_country_code: prefix-free codes of 1, 2 and 3 digits; nothing for what is no E.164 number."""
    engine, _ = wh
    cases = {"+442071234567": "44", "+12125551234": "1", "+79161234567": "7", "+35312345678": "353",
             "+88213456789": "882", "+2101234": None, "4420712345": None, "": None}  # fmt: skip
    with engine.connect() as conn:
        got = {n: conn.execute(text("SELECT e164_country_code(:n)"), {"n": n}).scalar() for n in cases}
    assert got == cases


def test_the_readme_queries_run_and_answer(wh):
    """The examples of the README's "The first questions" run as written, and say what they should."""
    engine, _ = wh
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("### The first questions", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    statements = [s for s in block.split(";") if s.strip()]
    assert len(statements) == 7
    results = [rows(engine, s) for s in statements]
    assert results[0][0] == ("acme", "A1", 5, 4, Decimal("2.44"))  # 136 s on the 1st + 10 s on the 2nd
    acme_gaps = [1, *range(4, 31)]  # nothing received on the 1st, nor from the 4th on
    expected_gaps = [("acme", date(2026, 11, d)) for d in acme_gaps] + [
        ("tel", date(2026, 11, d)) for d in range(1, 31)
    ]
    assert [r[:2] for r in results[5]] == expected_gaps
    assert results[6][0][:6] == ("TOKYO", "acme", "EUR", Decimal("0.30"), Decimal("0.12"), Decimal("0.18"))
