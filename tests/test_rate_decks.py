"""Rate decks (issue 11, first step): the importers on the real samples, storing and reading
versions, the version in force across midnight, diffs, bad decks refused whole, the CLI."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests.conftest import run_cli

from cdrflow.billing import decks
from cdrflow.billing.deck_files import DeckRefused, cdrflow_csv, cdrtool, cgrates
from cdrflow.billing.model import Deck, DeckVersion, Rate, Slot
from cdrflow.config import settings
from cdrflow.warehouse import migrations

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
CGRATES = SAMPLES / "cgrates" / "tariffplan_tutorial"
CDRTOOL = SAMPLES / "cdrtool-rating-csv"
DAY = date(2026, 11, 1)
HEADER = (
    "prefix,destination,call_type,call_sub_type,rate_per_minute,connect_fee,"
    "first_increment,next_increment,minimum_seconds,minimum_charge"
)


@pytest.fixture
def conn(engine):
    with engine.begin() as c:
        yield c
        c.execute(text("TRUNCATE rate_decks, rate_deck_versions, rates CASCADE"))


def write(tmp_path: Path, body: str, name: str = "deck.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def rate(prefix: str, price: str, fee: str = "0", name: str = "") -> Rate:
    return Rate(prefix, name, (Slot(0, Decimal(price), 60, 60),), connect_fee=Decimal(fee))


# -- importers ----------------------------------------------------------------------------------


def test_cgrates_tutorial_plans_are_decks():
    imported = cgrates.read(CGRATES, DAY)
    by_name = {v.deck.name: v for v in imported.versions}
    assert set(by_name) == {"RP_1001", "RP_1002", "RP_1002_LOW", "RP_1003"}
    (low,) = by_name["RP_1002_LOW"].rates
    assert low.prefix == "1001" and low.destination == "DST_1001"
    assert low.slots == (Slot(0, Decimal("0.1"), 60, 60), Slot(60, Decimal("0.05"), 60, 1))
    assert low.connect_fee == Decimal("0.2")
    assert (low.rounding_method, low.rounding_decimals, low.max_cost) == ("up", 4, None)
    assert by_name["RP_1002_LOW"].deck.rounding_method == "up"
    # RP_1001: two destination rates, the second with MaxCost 0.12 *disconnect, 0.01 per second
    rp1001 = {r.prefix: r for r in by_name["RP_1001"].rates}
    assert set(rp1001) == {"1002", "1003"}
    assert rp1001["1003"].slots == (Slot(0, Decimal("0.01"), 1, 1),)
    assert (rp1001["1003"].max_cost, rp1001["1003"].max_cost_strategy) == (Decimal("0.12"), "*disconnect")
    # the SMS and MMS plans count nanoseconds (a bare "1"): left out with a note, not refused
    assert any(n.startswith("RP_SMS: skipped") for n in imported.notes)
    assert any(n.startswith("RP_MMS: skipped") for n in imported.notes)


def test_cgrates_one_plan_and_bad_plans(tmp_path):
    assert [v.deck.name for v in cgrates.read(CGRATES, DAY, only="RP_1003").versions] == ["RP_1003"]
    with pytest.raises(DeckRefused, match="no rating plan RP_NONE"):
        cgrates.read(CGRATES, DAY, only="RP_NONE")
    with pytest.raises(DeckRefused, match="RP_SMS.*not in whole seconds"):
        cgrates.read(CGRATES, DAY, only="RP_SMS")
    folder = tmp_path / "tp"
    folder.mkdir()
    for f in CGRATES.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    rates = (folder / "Rates.csv").read_text().replace("RT_20CNT,0,0.1,60s,1s,60s", "RT_20CNT,0,-0.1,60s,0s,60s")
    (folder / "Rates.csv").write_text(rates)
    (folder / "Destinations.csv").write_text("#Id,Prefix\nDST_1002,1002\nDST_1001,10x1\nDST_FS,10\nDST_1003,1003")
    with pytest.raises(DeckRefused) as refused:
        cgrates.read(folder, DAY)
    assert refused.value.problems == [
        "Destinations.csv line 3: DST_1001: prefix '10x1' is not digits",
        "Rates.csv line 5: Rate -0.1 is negative",
        "Rates.csv line 5: RT_20CNT: RateIncrement is 0",
        "DestinationRates.csv line 2: DR_1001_20CNT: destination DST_1001 is not in Destinations.csv",
        "DestinationRates.csv line 5: DR_1001_10CNT: destination DST_1001 is not in Destinations.csv",
    ]
    with pytest.raises(DeckRefused, match="not a CGRateS tariff plan: Destinations.csv is missing"):
        cgrates.read(CDRTOOL, DAY)


def test_cgrates_durations():
    assert cgrates.duration_seconds("60s") == 60
    assert cgrates.duration_seconds("1m") == 60
    assert cgrates.duration_seconds("1m30s") == 90
    assert cgrates.duration_seconds("0s") == 0
    assert cgrates.duration_seconds("1") == Decimal("1E-9")  # CGRateS: a bare number is nanoseconds
    assert cgrates.duration_seconds("60x") is None


def test_cdrtool_tables():
    imported = cdrtool.read(CDRTOOL, Deck("grn_premium"), DAY)
    (version,) = imported.versions
    assert len(version.rates) == 13126  # every destination; the one SMS rate is left out, with a note
    assert any("other applications than audio" in n for n in imported.notes)
    by_prefix = {r.prefix: r for r in version.rates}
    usa = by_prefix["1"]  # destinations: 1,USA, Incr 6, Min Dur 6
    assert usa.destination == "USA"
    assert usa.minimum_seconds == 6 and usa.slots[0].increment == 6 and usa.slots[0].unit == 60
    lithuania = by_prefix["3706"]  # rates: grn_premium,3706,audio,0,999: 0.0999 a minute
    assert lithuania.slots == (Slot(0, Decimal("0.0999"), 60, 1),) and lithuania.connect_fee == 0
    assert by_prefix["690"].slots[0].price == Decimal("0.9975")
    assert version.deck.rounding_method == "half_up" and version.deck.rounding_decimals == 4
    # the same when given one of the files, and a deck named otherwise takes the only table
    assert len(cdrtool.read(CDRTOOL / "rates.csv", Deck("other"), DAY).versions[0].rates) == 13126


def test_cdrflow_csv_with_tiers(tmp_path):
    path = write(
        tmp_path,
        f"# a comment\n{HEADER},tiers\n"
        "44,United Kingdom,I,,0.0100,0,60,60,0,0,\n"
        "447,UK Mobile,M,,0.08,0.015,30,6,30,0.01,\n"
        "1001,Tutorial,S,,0.10,0.20,60,60,,,60:0.05:1\n",
    )
    (version,) = cdrflow_csv.read(path, Deck("retail"), DAY).versions
    r = {x.prefix: x for x in version.rates}
    assert r["44"].slots == (Slot(0, Decimal("0.0100"), 60, 60),) and r["44"].call_type == "I"
    assert r["447"].slots == (Slot(0, Decimal("0.08"), 60, 30), Slot(30, Decimal("0.08"), 60, 6))
    assert (r["447"].connect_fee, r["447"].minimum_seconds, r["447"].minimum_charge) == (
        Decimal("0.015"),
        30,
        Decimal("0.01"),
    )
    assert r["1001"].slots == (Slot(0, Decimal("0.10"), 60, 60), Slot(60, Decimal("0.05"), 60, 1))
    assert r["1001"].call_sub_type is None and r["1001"].minimum_seconds == 0


def test_bad_cdrflow_deck_is_refused_with_line_numbers(tmp_path):
    path = write(
        tmp_path,
        f"{HEADER}\n"
        "44,UK,I,,0.01,0,60,60,0,0\n"
        "4a4,UK,I,,0.01,0,60,60,0,0\n"
        "44,UK again,I,,0.02,0,60,60,0,0\n"
        "33,France,I,,-0.01,0,60,60,0,0\n"
        "34,Spain,I,,0.01,-1,60,60,0,0\n"
        "49,Germany,I,,0.01,0,0,60,0,0\n"
        "39,Italy,X,,0.01,0,60,60,0,0\n",
    )
    with pytest.raises(DeckRefused) as refused:
        cdrflow_csv.read(path, Deck("bad"), DAY)
    assert refused.value.problems == [
        "deck.csv line 3: prefix '4a4' is not digits",
        "deck.csv line 4: prefix 44 again (first on line 2)",
        "deck.csv line 5: rate_per_minute -0.01 is negative",
        "deck.csv line 6: connect_fee -1 is negative",
        "deck.csv line 7: first_increment is 0 (it must be at least 1 second)",
        "deck.csv line 8: call_type 'X' is not one of I, M, MG, M3, S, L, 8, 9",
    ]
    with pytest.raises(DeckRefused, match="not a cdrflow rate deck header: missing column"):
        cdrflow_csv.read(CDRTOOL / "rates.csv", Deck("bad"), DAY)
    many = write(tmp_path, HEADER + "\n" + "".join(f"x{i},,,,1,0,60,60,0,0\n" for i in range(25)), "many.csv")
    with pytest.raises(DeckRefused) as refused:
        cdrflow_csv.read(many, Deck("bad"), DAY)
    assert len(refused.value.problems) == 25
    assert len(refused.value.lines) == 21 and refused.value.lines[-1] == "... and 5 more problem(s)"


# -- store, versions, the version in force --------------------------------------------------------


def test_store_and_load_across_midnight(conn):
    deck = Deck("retail", currency="EUR", timezone="Europe/Amsterdam")
    v1 = DeckVersion(deck, date(2026, 11, 1), (rate("44", "0.01", name="UK"), rate("33", "0.02")))
    v2 = DeckVersion(deck, date(2026, 11, 2), (rate("44", "0.015", "0.1", name="UK"), rate("49", "0.03")))
    id1 = decks.store(conn, v1, "a.csv (cdrflow)")
    id2 = decks.store(conn, v2, "b.csv (cdrflow)")
    assert id2 > id1
    assert [(v.version, v.effective_from, v.rates) for v in decks.versions(conn, "retail")] == [
        (1, date(2026, 11, 1), 2),
        (2, date(2026, 11, 2), 2),
    ]
    assert decks.load_version(conn, "retail", datetime(2026, 10, 31, 12)) is None  # nothing in force yet
    before = decks.load_version(conn, "retail", datetime(2026, 11, 1, 23, 59, 59))
    after = decks.load_version(conn, "retail", datetime(2026, 11, 2, 0, 0, 0))
    assert before is not None and after is not None
    assert before.rates == tuple(sorted(v1.rates, key=lambda r: r.prefix))
    assert after.rates == tuple(sorted(v2.rates, key=lambda r: r.prefix))
    assert after.deck == deck  # settings (time zone, rounding, ...) came back from jsonb
    # midnight in the deck's time zone: 23:30 UTC on 1 November is 00:30 on 2 November in Amsterdam
    late = decks.load_version(conn, "retail", datetime(2026, 11, 1, 23, 30, tzinfo=UTC))
    assert late is not None and late.effective_from == date(2026, 11, 2)
    # a later import with the same date wins the tie
    decks.store(conn, DeckVersion(deck, date(2026, 11, 2), (rate("44", "0.5"),)), "c.csv (cdrflow)")
    tie = decks.load_version(conn, "retail", date(2026, 11, 3))
    assert tie is not None and [r.prefix for r in tie.rates] == ["44"]


def test_store_refuses_a_deck_that_changes_currency_or_kind(conn):
    decks.store(conn, DeckVersion(Deck("d", currency="EUR"), DAY, (rate("1", "1"),)), "x")
    with pytest.raises(decks.DeckMismatch, match="in EUR, not USD"):
        decks.store(conn, DeckVersion(Deck("d", currency="USD"), DAY, (rate("1", "1"),)), "x")
    with pytest.raises(decks.DeckMismatch, match="sell deck, not buy"):
        decks.store(conn, DeckVersion(Deck("d", currency="EUR", kind="buy"), DAY, (rate("1", "1"),)), "x")


def test_settings_unknown_to_this_cdrflow_are_ignored():
    deck = decks.deck_from_row("d", "USD", "sell", {"rounding_decimals": 2, "from_the_future": 1})
    assert deck.rounding_decimals == 2 and deck.name == "d"
    assert "name" not in decks.deck_settings(deck) and decks.deck_settings(deck)["rounding_decimals"] == 2


def test_cdrtool_deck_stores_fast(conn):
    version = cdrtool.read(CDRTOOL, Deck("grn_premium"), DAY).versions[0]
    started = time.perf_counter()
    version_id = decks.store(conn, version, "cdrtool-rating-csv (cdrtool)")
    stored = time.perf_counter() - started
    assert stored < 1.0, stored
    assert conn.execute(text("SELECT count(*) FROM rates WHERE version_id = :v"), {"v": version_id}).scalar() == 13126
    again = decks.load_version_id(conn, version_id)
    assert again.rates == tuple(sorted(version.rates, key=lambda r: r.prefix))
    price = conn.execute(text("SELECT slots->0->>'price' FROM rates WHERE prefix = '3706'")).scalar()
    assert price == "0.0999"


# -- diff -------------------------------------------------------------------------------------------


def test_diff():
    deck = Deck("d")
    old = DeckVersion(
        deck, DAY, (rate("1", "0.10"), rate("2", "0.10"), rate("3", "0.10"), rate("4", "0.10"), rate("5", "0.1"))
    )
    new = DeckVersion(
        deck,
        DAY,
        (
            rate("1", "0.10"),  # unchanged
            rate("2", "0.20"),  # up
            rate("3", "0.05"),  # down
            rate("4", "0.10", fee="0.01"),  # up: same price, a connect fee
            Rate("5", "", (Slot(0, Decimal("0.10"), 60, 1),)),  # other change: increments
            rate("6", "0.10"),  # added
        ),
    )
    d = decks.diff(old, new)
    assert [r.prefix for r in d.added] == ["6"]
    assert [o.prefix for o, _ in d.up] == ["2", "4"]
    assert [o.prefix for o, _ in d.down] == ["3"]
    assert [o.prefix for o, _ in d.changed] == ["5"]
    assert d.unchanged == 1 and d.removed == []
    assert decks.diff(new, old).removed[0].prefix == "6"
    assert d.render().splitlines()[0] == "1 added, 0 removed, 2 price up, 1 price down, 1 other change(s), 1 unchanged"
    assert "  up       2            0.10/60s 60/60 -> 0.20/60s 60/60" in d.render()
    assert len(decks.diff(None, new).added) == 6


# -- the command line -------------------------------------------------------------------------------


def test_cli_import_and_list(new_database, tmp_path):
    env = {"CDRFLOW_DATABASE_URL": new_database()}
    first = write(tmp_path, f"{HEADER}\n44,UK,I,,0.01,0,60,60,0,0\n33,France,I,,0.02,0,60,60,0,0\n", "v1.csv")
    second = write(tmp_path, f"{HEADER}\n44,UK,I,,0.02,0,60,60,0,0\n49,Germany,I,,0.03,0,60,60,0,0\n", "v2.csv")
    r = run_cli(
        "rates",
        "import",
        str(first),
        "--deck",
        "retail",
        "--currency",
        "EUR",
        "--effective-from",
        "2026-11-01",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "deck retail (sell, EUR): version 1, 2 rates, in force from 2026-11-01; a new deck:" in r.stdout
    assert "2 added, 0 removed" in r.stdout
    r = run_cli("rates", "import", str(second), "--deck", "retail", "--effective-from", "2026-11-02", env=env)
    assert r.returncode == 0, r.stderr
    assert "version 2, 2 rates, in force from 2026-11-02; against version 1 (from 2026-11-01):" in r.stdout
    assert "1 added, 1 removed, 1 price up, 0 price down" in r.stdout
    assert "  added    49           Germany 0.03/60s 60/60" in r.stdout
    # a bad deck: one error line per problem, nothing stored
    bad = write(tmp_path, f"{HEADER}\n4x,UK,I,,0.01,0,60,60,0,0\n44,UK,I,,0.01,0,60,0,0,0\n", "bad.csv")
    r = run_cli("rates", "import", str(bad), "--deck", "retail", env=env)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "error: bad.csv line 2: prefix '4x' is not digits",
        "error: bad.csv line 3: next_increment is 0 (it must be at least 1 second)",
    ]
    r = run_cli("rates", "import", str(first), "--deck", "retail", "--currency", "USD", env=env)
    assert r.returncode == 1 and r.stderr.strip() == "error: deck retail is in EUR, not USD"
    # CGRateS: every plan is a deck, in one go
    r = run_cli("rates", "import", str(CGRATES), "--format", "cgrates", "--effective-from", "2026-11-01", env=env)
    assert r.returncode == 0, r.stderr
    assert "deck RP_1002_LOW (sell, USD): version 1, 1 rates" in r.stdout
    assert "note: RP_SMS: skipped" in r.stdout
    r = run_cli("rates", "import", str(CGRATES), "--format", "cgrates", "--deck", "RP_1002_LOW", env=env)
    assert r.returncode == 0, r.stderr
    assert "RP_1002_LOW (sell, USD): version 2" in r.stdout and "RP_1001" not in r.stdout
    assert "0 added, 0 removed, 0 price up, 0 price down, 0 other change(s), 1 unchanged" in r.stdout
    # CDRTool: the whole command, timed
    started = time.perf_counter()
    r = run_cli("rates", "import", str(CDRTOOL), "--deck", "grn_premium", "--format", "cdrtool", env=env)
    took = time.perf_counter() - started
    assert r.returncode == 0, r.stderr
    assert "version 1, 13126 rates" in r.stdout and "13126 added" in r.stdout
    print(f"cdrtool import, whole command: {took:.2f} s")
    assert took < 30
    r = run_cli("rates", "list", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "deck",
        "kind",
        "currency",
        "version",
        "effective",
        "from",
        "rates",
        "source",
        "imported",
    ]
    assert sum(1 for line in lines if line.startswith("retail ")) == 2
    assert any(line.startswith("grn_premium") and "13126" in line for line in lines)
    r = run_cli("rates", "list", "--deck", "nope", env=env)
    assert r.returncode == 1 and r.stderr.strip() == "error: no rate deck nope"
    engine = create_engine(env["CDRFLOW_DATABASE_URL"])
    migrations.upgrade(engine, settings.SQL_DIR)
    with engine.connect() as c:
        comments = c.execute(
            text(
                "SELECT count(*) FROM information_schema.columns col WHERE table_name IN ('rate_decks', "
                "'rate_deck_versions', 'rates', 'rate_periods') AND col_description(('public.' || table_name)::regclass, "
                "ordinal_position) IS NULL"
            )
        ).scalar()
    engine.dispose()
    assert comments == 0  # every column is described for analysts


def test_a_cgrates_deck_imported_from_its_folder_quotes_as_cgrates_does(new_database):
    """The published anchor through the whole path: import the tutorial tariff plan, then
    `cdrflow rate quote` on RP_1002_LOW (RT_10CNT: connect 0.2, 0.1/min in 60 s steps for the
    first minute, 0.05/min in 1 s steps after, *up to 4 decimals): 61 s cost 0.3009."""
    import json

    env = {"CDRFLOW_DATABASE_URL": new_database()}
    r = run_cli("rates", "import", str(CGRATES), "--format", "cgrates", "--effective-from", "2026-11-01", env=env)
    assert r.returncode == 0, r.stderr
    args = ["rate", "quote", "--deck", "RP_1002_LOW", "--to", "1001", "--seconds", "61"]
    r = run_cli(*args, "--at", "2026-11-02T10:00:00+00:00", "--json", env=env)
    assert r.returncode == 0, r.stderr
    quote = json.loads(r.stdout)
    assert (quote["prefix"], quote["billed_seconds"], quote["cost"]) == ("1001", 61, "0.3009")
    r = run_cli(*args, "--at", "2026-10-31T10:00:00+00:00", env=env)  # before the deck's first version
    assert r.returncode != 0 and "RP_1002_LOW" in r.stderr
    r = run_cli("rate", "quote", "--deck", "RP_1002_LOW", "--to", "4420", "--seconds", "61", env=env)
    assert r.returncode != 0 and "4420" in r.stderr
