"""Billing runs (issue 11, step 2): accounts, charges (append-only, one current per call and
side), a billrun of a period from real loaded calls, exactly once, the CLI.

The calls are Asterisk ``Master.csv`` lines loaded by the loader (accountcode is the account);
the decks are stored with ``billing.decks.store``.
"""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from tests.conftest import run_cli

from cdrflow.billing import decks
from cdrflow.billing.billrun import BillingError, run_billrun
from cdrflow.billing.charging import NO_DECK, NOT_IN_FORCE
from cdrflow.billing.model import Deck, DeckVersion, Rate, Slot
from cdrflow.billing.rating import NO_MATCH, NO_SECONDS, NOT_RATABLE
from cdrflow.config import account_file
from cdrflow.config.errors import ConfigurationError
from cdrflow.intake.registry import register_file
from cdrflow.loading.transaction import load_file
from cdrflow.warehouse import accounts
from conftest import add_carrier


@pytest.fixture
def billing(engine):
    yield engine
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE billing_feed, invoice_lines, charges, billruns, accounts, rate_decks, rate_deck_versions, rates CASCADE"
            )
        )


def master_line(uid: str, account: str, dst: str, start: str, billsec: int) -> str:
    """One 21-column Asterisk Master.csv line; 0 billsec is a call nobody answered."""
    t0 = datetime.fromisoformat(start)
    fmt = "%Y-%m-%d %H:%M:%S"
    answer = (t0 + timedelta(seconds=5)).strftime(fmt) if billsec else ""
    end = (t0 + timedelta(seconds=5 + billsec)).strftime(fmt)
    fields = [
        account, "100", dst, "default", '"A" <100>', "SIP/100-01", "SIP/trunk-02", "Dial", f"SIP/trunk/{dst}",
        t0.strftime(fmt), answer, end, str(5 + billsec), str(billsec),
        "ANSWERED" if billsec else "NO ANSWER", "DOCUMENTATION", uid, "", "", uid, "1",
    ]  # fmt: skip
    return ",".join('"' + f + '"' for f in fields) + "\n"


def load(engine, store, lines: list[str], carrier: str = "acme", name: str = "Master.csv") -> int:
    data = "".join(lines).encode()
    reg = register_file(engine, store, io.BytesIO(data), file_name=name, carrier=carrier, file_source="sftp")
    result = load_file(engine, store, reg.file_id)
    assert result.status == "loaded" and result.loaded == len(lines), result
    return reg.file_id


def one_minute(prefix: str, price: str, name: str, fee: str = "0", step: int = 60) -> Rate:
    return Rate(prefix, name, (Slot(0, Decimal(price), 60, step),), connect_fee=Decimal(fee), call_type="I")


def store_deck(engine, name: str, effective: date, rates: tuple[Rate, ...], kind: str = "sell") -> int:
    with engine.begin() as conn:
        deck = Deck(name=name, currency="EUR", kind=kind)
        return decks.store(conn, DeckVersion(deck, effective, rates), "test")


def add_account(engine, account_id: str, deck: str, timezone: str = "UTC", cycle: str = "daily") -> None:
    with engine.begin() as conn:
        accounts.upsert(
            conn,
            account_file.parse_account(
                {"account_id": account_id, "sell_deck": deck, "cycle": cycle, "timezone": timezone, "currency": "EUR"}
            ),
        )


def q(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


UK, DE = "441234567", "491234567"


@pytest.fixture
def day(billing, store):
    """1 November 2026: rated, unanswered and every unrated reason; a Tokyo account; v2 of the
    deck from 2 November."""
    engine = billing
    add_carrier(engine, "acme")
    store_deck(
        engine, "retail", date(2026, 10, 1), (one_minute("44", "0.10", "UK"), one_minute("49", "0.06", "DE", "0.01", 1))
    )
    store_deck(
        engine, "retail", date(2026, 11, 2), (one_minute("44", "0.20", "UK"), one_minute("49", "0.06", "DE", "0.01", 1))
    )
    store_deck(engine, "later", date(2026, 12, 1), (one_minute("44", "0.10", "UK"),))
    add_account(engine, "A1", "retail")
    add_account(engine, "TOKYO", "retail", timezone="Asia/Tokyo")
    add_account(engine, "NODECK", "never-imported")
    add_account(engine, "EARLY", "later")
    lines = [
        master_line("1.1", "A1", UK, "2026-11-01 10:00:00", 61),  # 120 s at 0.10 -> 0.2000
        master_line("1.2", "A1", DE, "2026-11-01 11:00:00", 30),  # 0.01 + 30 x 0.001 -> 0.0400
        master_line("1.3", "A1", UK, "2026-11-01 12:00:00", 0),  # unanswered -> 0
        master_line("1.4", "A1", "999123", "2026-11-01 12:30:00", 10),  # no prefix match
        master_line("1.5", "A1", "*72", "2026-11-01 12:40:00", 10),  # not ratable
        master_line("1.6", "A1", UK, "2026-11-01 13:00:00", 20),  # billing seconds set NULL below
        master_line("1.7", "NODECK", UK, "2026-11-01 14:00:00", 10),  # no deck (deck not imported)
        master_line("1.8", "EARLY", UK, "2026-11-01 15:00:00", 10),  # deck not in force until December
        master_line("1.9", "STRANGER", UK, "2026-11-01 16:00:00", 10),  # no such account: no deck
        master_line("1.10", "A1", UK, "2026-11-01 23:59:00", 61),  # before midnight: v1, 0.2000
        master_line("2.1", "A1", UK, "2026-11-02 00:00:30", 61),  # after midnight: v2, 0.4000
        master_line("2.2", "TOKYO", UK, "2026-10-31 16:00:00", 30),  # 1 November 01:00 in Tokyo: 0.1000
        master_line("2.3", "TOKYO", UK, "2026-11-01 16:00:00", 30),  # 2 November 01:00 in Tokyo
        master_line("2.4", "STRANGER", UK, "2026-10-31 23:00:00", 10),  # 31 October (UTC)
    ]
    file_id = load(engine, store, lines)
    with engine.begin() as conn:
        conn.execute(text("UPDATE calls SET billing_seconds = NULL WHERE record_key LIKE '1.6%'"))
    return file_id


def sell_charges(engine):
    return {
        r.record_key.split("#")[0]: r
        for r in q(engine, "SELECT * FROM charges WHERE side = 'sell' AND current ORDER BY id")
    }


def test_a_day_is_charged_with_every_reason_and_the_right_deck_version(billing, day):
    run = run_billrun(billing, "daily", "2026-11-01")
    assert (run.status, run.version, run.new, run.scope) == ("closed", 1, True, "all")
    by_call = sell_charges(billing)
    assert set(by_call) == {f"1.{i}" for i in range(1, 11)} | {"2.2"}  # not 2.1, 2.3, 2.4: other days
    assert run.calls == 11
    assert run.unrated == {NO_MATCH: 1, NOT_RATABLE: 1, NO_SECONDS: 1, NO_DECK: 2, NOT_IN_FORCE: 1}
    assert run.rated == 5
    assert by_call["1.1"].cost == Decimal("0.2000") and by_call["1.1"].billed_seconds == 120
    assert by_call["1.2"].cost == Decimal("0.0400") and by_call["1.2"].prefix == "49"
    assert by_call["1.3"].cost == 0 and by_call["1.3"].unrated_reason is None  # unanswered
    assert by_call["1.4"].cost is None and by_call["1.4"].unrated_reason == NO_MATCH
    assert by_call["1.9"].account_id == "STRANGER" and by_call["1.9"].unrated_reason == NO_DECK
    assert by_call["2.2"].cost == Decimal("0.1000")  # Tokyo's 1 November
    assert by_call["1.1"].breakdown["rate"] == "0.10" and by_call["1.1"].breakdown["connect_fee"] == "0"
    assert run.totals == {"EUR": Decimal("0.3400") + Decimal("0.2000")}
    assert q(billing, "SELECT DISTINCT billrun FROM cdr_files WHERE id = :i", i=day) == [(str(run.id),)]

    # the deck changes at midnight: the call after it is rated with version 2
    after = run_billrun(billing, "daily", "2026-11-02")
    versions = dict(q(billing, "SELECT id, version FROM rate_deck_versions WHERE deck = 'retail'"))
    by_call = sell_charges(billing)
    assert versions[by_call["1.10"].deck_version_id] == 1 and by_call["1.10"].cost == Decimal("0.2000")
    assert versions[by_call["2.1"].deck_version_id] == 2 and by_call["2.1"].cost == Decimal("0.4000")
    assert by_call["2.3"].billrun_id == after.id  # Tokyo's 2 November


def test_a_day_billed_twice_charges_once(billing, day):
    first = run_billrun(billing, "daily", "2026-11-01")
    count = q(billing, "SELECT count(*) FROM charges")[0][0]
    again = run_billrun(billing, "daily", "2026-11-01")
    assert not again.new and again.id == first.id and again.version == 1
    assert q(billing, "SELECT count(*) FROM charges")[0][0] == count
    assert q(billing, "SELECT count(*) FROM billruns")[0][0] == 1
    # another scope over the same calls finds them charged: it charges nothing
    alone = run_billrun(billing, "daily", "2026-11-01", account="A1")
    assert alone.calls == 0 and alone.totals == {}
    assert q(billing, "SELECT count(*) FROM charges")[0][0] == count
    # the database itself refuses a second current charge of a call and side
    with pytest.raises(Exception, match="charges_current_key"), billing.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO charges (billrun_id, call_id, carrier, record_key, start_time, side, cost, currency) "
                "SELECT billrun_id, call_id, carrier, record_key, start_time, side, 1, 'EUR' FROM charges LIMIT 1"
            )
        )


def test_legs_charged_by_another_billrun_after_they_were_read_are_skipped(billing, day, monkeypatch, caplog):
    """Another billrun charges a leg after this run read its legs: the first try's COPY meets that
    charge (the unique index of current charges), everything of it rolls back and the run rates
    again the safe way (staged, ON CONFLICT DO NOTHING), which skips a second leg charged the same
    way meanwhile; neither leg is charged twice, invoiced or fed by this run."""
    from cdrflow.billing import billrun

    with billing.begin() as conn:
        other = conn.execute(
            text(
                "INSERT INTO billruns (kind, period_start, period_end, scope, version, status) "
                "VALUES ('daily', '2026-11-01', '2026-11-02', 'A1', 1, 'closed') RETURNING id"
            )
        ).scalar_one()
    meanwhile = iter(["1.1", "1.2"])  # one leg charged by the other run before each try writes
    writer = billrun.ChargeWriter

    def charged_meanwhile(conn, direct):
        with billing.begin() as elsewhere:
            elsewhere.execute(
                text(
                    "INSERT INTO charges (billrun_id, call_id, carrier, record_key, start_time, account_id, side, cost, "
                    "currency) SELECT :b, id, carrier, record_key, start_time, account_id, 'sell', 1, 'EUR' FROM calls "
                    "WHERE record_key LIKE :k"
                ),
                {"b": other, "k": next(meanwhile) + "#%"},
            )
        return writer(conn, direct)

    monkeypatch.setattr(billrun, "ChargeWriter", charged_meanwhile)
    with caplog.at_level("INFO", logger="cdrflow.billing.billrun"):
        run = run_billrun(billing, "daily", "2026-11-01")
    assert "legs charged by another billrun meanwhile; rating again" in caplog.text
    assert next(meanwhile, None) is None  # both tries ran
    assert (run.status, run.version, run.calls) == ("closed", 1, 9)
    by_call = sell_charges(billing)
    assert by_call["1.1"].billrun_id == other and by_call["1.2"].billrun_id == other
    assert {k for k, r in by_call.items() if r.billrun_id == run.id} == {f"1.{i}" for i in range(3, 11)} | {"2.2"}
    assert q(billing, "SELECT count(*) FROM charges WHERE billrun_id = :b", b=run.id) == [(9,)]
    assert run.totals == {"EUR": Decimal("0.2000") + Decimal("0.1000")}  # 1.10 and 2.2; not 1.1, 1.2
    # fed, in start order: its rated sell charges (1.4-1.9 are unrated), with the numbers of their calls
    fed = q(
        billing, 'SELECT c.record_key, f."to" FROM billing_feed f JOIN charges c ON c.id = f.charge_id ORDER BY f.id'
    )
    assert [(k.split("#")[0], to) for k, to in fed] == [("2.2", UK), ("1.3", UK), ("1.10", UK)]
    assert q(billing, "SELECT sum(calls) FROM invoice_lines WHERE billrun_id = :b", b=run.id) == [(3,)]


def test_a_billrun_left_running_by_a_dead_process_is_marked_failed_by_the_next(billing, day):
    """A process killed mid-run leaves its billrun `running` (its charges rolled back with it);
    the next run of the same kind, period and scope holds the lock, so that row cannot be live:
    it is marked failed with the reason, and the new run bills the day."""
    with billing.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO billruns (kind, period_start, period_end, scope, version) "
                "VALUES ('daily', '2026-11-01', '2026-11-02', 'all', 1)"
            )
        )
    run = run_billrun(billing, "daily", "2026-11-01")
    assert run.version == 2 and run.status == "closed" and run.rated
    ((status, error),) = q(billing, "SELECT status, error FROM billruns WHERE version = 1")
    assert status == "failed" and error.startswith("abandoned: the process running it ended")


def test_a_late_file_is_an_adjustment_version(billing, day, store):
    run_billrun(billing, "daily", "2026-11-01")
    load(billing, store, [master_line("9.1", "A1", UK, "2026-11-01 09:00:00", 60)], name="late.csv")
    late = run_billrun(billing, "daily", "2026-11-01")
    assert (late.version, late.calls, late.rated, late.totals) == (2, 1, 1, {"EUR": Decimal("0.1000")})


def test_invoice_totals_are_the_sum_of_their_rounded_call_costs(billing, day):
    run = run_billrun(billing, "daily", "2026-11-01")
    lines = q(
        billing,
        "SELECT account_id, destination, calls, amount FROM invoice_lines WHERE billrun_id = :i ORDER BY 1, 2",
        i=run.id,
    )
    # the unanswered call to the UK is a line's third call, at 0
    assert lines == [("A1", "DE", 1, Decimal("0.0400")), ("A1", "UK", 3, Decimal("0.4000")),
                     ("TOKYO", "UK", 1, Decimal("0.1000"))]  # fmt: skip
    summed = q(
        billing,
        "SELECT coalesce(account_id, ''), coalesce(destination, ''), count(*), sum(cost) FROM charges "
        "WHERE billrun_id = :i AND side = 'sell' AND unrated_reason IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
        i=run.id,
    )
    assert lines == summed
    assert run.totals["EUR"] == sum(line.amount for line in lines)


def test_buy_and_sell_are_both_charged_when_the_carrier_has_a_buy_deck(billing, store):
    add_carrier(billing, "tel", config={"buy_deck": "tel_buy"})
    store_deck(billing, "retail", date(2026, 10, 1), (one_minute("44", "0.10", "UK"),))
    store_deck(billing, "tel_buy", date(2026, 10, 1), (one_minute("44", "0.04", "UK", step=1),), kind="buy")
    add_account(billing, "A1", "retail", cycle="monthly")
    load(billing, store, [master_line("5.1", "A1", UK, "2026-11-03 10:00:00", 90)], carrier="tel")
    run = run_billrun(billing, "monthly", "2026-11")
    rows = {r.side: r for r in q(billing, "SELECT side, deck, cost, billed_seconds FROM charges")}
    assert rows["sell"].deck == "retail" and rows["sell"].cost == Decimal("0.2000")
    assert rows["buy"].deck == "tel_buy" and rows["buy"].cost == Decimal("0.0600")
    assert (run.rated, run.buy_rated, run.buy_totals) == (1, 1, {"EUR": Decimal("0.0600")})
    assert run.totals == {"EUR": Decimal("0.2000")}  # the invoice is the sell side only


def test_refusals(billing, day):
    with pytest.raises(BillingError, match="takes a month"):
        run_billrun(billing, "monthly", "2026-11-01")
    with pytest.raises(BillingError, match="billed daily"):
        run_billrun(billing, "monthly", "2026-11", account="A1")
    with pytest.raises(BillingError, match="unknown account"):
        run_billrun(billing, "daily", "2026-11-01", account="NOBODY")


def test_account_file_mistakes_name_the_account_and_key():
    good = "accounts:\n  - {account_id: 1001, sell_deck: retail, currency: EUR, timezone: Europe/Berlin}\n"
    (a,) = account_file.parse(good)
    assert (a.account_id, a.cycle, a.name) == ("1001", "monthly", "1001")
    for body, message in (
        ("- {account_id: x, sell_deck: d, currency: EUR, cycle: weekly}", "account x: cycle: unknown cycle 'weekly'"),
        (
            "- {account_id: x, sell_deck: d, currency: EUR, timezone: Mars/Base}",
            "account x: timezone: unknown time zone",
        ),
        ("- {account_id: x, sell_deck: d, currency: eur}", "account x: currency: 'eur' is not an ISO 4217"),
        ("- {account_id: x, sell_deck: d, currency: EUR, colour: red}", "account x: unknown key(s) colour"),
        ("- {account_id: x, currency: EUR}", "account x: missing sell_deck"),
    ):
        with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            account_file.parse("accounts:\n  " + body + "\n")
    assert account_file.load()  # the shipped include/accounts.yaml is valid


def test_cli_syncs_accounts_and_runs_a_billrun(billing, day, warehouse_url, tmp_path):
    path = tmp_path / "accounts.yaml"
    path.write_text("accounts:\n  - {account_id: A1, sell_deck: retail, currency: EUR, cycle: daily}\n")
    env = {"CDRFLOW_DATABASE_URL": warehouse_url, "CDRFLOW_ACCOUNTS_FILE": str(path)}
    synced = run_cli("accounts", "sync", env=env)
    assert synced.returncode == 0 and "1 account(s)" in synced.stdout, synced.stderr
    done = run_cli("bill", "run", "--kind", "daily", "--period", "2026-11-01", env=env)
    assert done.returncode == 0, done.stderr
    assert "calls charged: 11" in done.stdout and "no prefix match: 1" in done.stdout
    assert "totals (sell): 0.5400 EUR" in done.stdout and "SELECT * FROM invoice_lines" in done.stdout
    again = run_cli("bill", "run", "--kind", "daily", "--period", "2026-11-01", env=env)
    assert again.returncode == 0 and "nothing new to charge" in again.stdout
    bad = run_cli("bill", "run", "--kind", "daily", "--period", "2026-11", env=env)
    assert bad.returncode == 1 and bad.stderr.startswith("error: period '2026-11'")


def test_a_billrun_charges_exactly_the_billable_legs_of_each_rule(billing, store):
    """The billrun's own form of the billable flag agrees with cdrflow_call_legs (sql/010): calls
    of several legs bill one leg under answered_longest and originating, every leg under every_leg."""
    from tests.test_record_identity import DAY, FORK, LOCAL_CHAIN, QUEUE, TRANSFER

    lines = FORK + LOCAL_CHAIN + QUEUE + TRANSFER
    add_carrier(billing, "pbx", file_type="asterisk_csv")
    add_carrier(billing, "each", file_type="asterisk_csv", config={"billable_leg": "every_leg"})
    add_carrier(billing, "orig", file_type="asterisk_csv", config={"billable_leg": "originating"})
    for n, carrier in enumerate(("pbx", "each", "orig")):  # and a call of one leg each (files differ)
        load(billing, store, [*lines, master_line(f"9.{n}", "X", UK, f"{DAY} 15:00:00", 10)], carrier, f"{n}.csv")
    run = run_billrun(billing, "daily", DAY)
    charged = q(billing, "SELECT carrier, record_key FROM charges WHERE side = 'sell' ORDER BY 1, 2")
    billable = q(billing, "SELECT carrier, record_key FROM call_legs WHERE billable ORDER BY 1, 2")
    assert charged == billable
    by_carrier = {c: sum(1 for r in charged if r[0] == c) for c in ("pbx", "each", "orig")}
    assert by_carrier == {"pbx": 5, "each": len(lines) + 1, "orig": 5}
    assert run.calls == 5 + len(lines) + 1 + 5


def test_the_direct_and_the_safe_way_close_and_feed_a_billrun_alike(billing, day, store, monkeypatch):
    """A billrun that writes straight into ``charges`` counts its charges as it rates them and keeps
    its rated sell charges with what their feed records show, worked out in Python; one that had
    to write the safe way closes and feeds from ``charges`` in SQL. Both give the same billrun,
    invoice lines and feed, over every unrated reason, a buy side, seed 004's call types (MG, a
    listed sub type, one it does not list), a billing group and a time zone."""
    from cdrflow.billing import billrun

    add_carrier(billing, "tel", config={"buy_deck": "tel_buy"})
    mobile = (
        Rate("4477", "UK mobile", (Slot(0, Decimal("0.15"), 60, 60),), call_type="MG"),
        Rate("4480", "UK freephone", (Slot(0, Decimal("0.02"), 60, 1),), call_type="IS", call_sub_type="IN8"),
        Rate("4420", "London", (Slot(0, Decimal("0.03"), 60, 1),), call_type="S", call_sub_type="XX"),
    )
    store_deck(billing, "mobile", date(2026, 10, 1), mobile)
    store_deck(billing, "tel_buy", date(2026, 10, 1), (one_minute("44", "0.04", "UK", step=1),), kind="buy")
    with billing.begin() as conn:
        accounts.upsert(
            conn,
            account_file.parse_account(
                {"account_id": "GRP", "sell_deck": "mobile", "cycle": "daily", "timezone": "Europe/Lisbon",
                 "currency": "EUR", "billing_group": "resellers"}
            ),
        )  # fmt: skip
    load(
        billing,
        store,
        [
            master_line("7.1", "GRP", "447700900123", "2026-11-01 09:00:00", 75),
            master_line("7.2", "GRP", "448001234567", "2026-11-01 09:10:00", 40),
            master_line("7.3", "GRP", "442071234567", "2026-11-01 23:30:00", 61),
            master_line("7.4", "GRP", "33123456789", "2026-11-01 09:20:00", 30),  # no match on either side
        ],
        carrier="tel",
        name="tel.csv",
    )

    def outcome():
        run = q(
            billing,
            "SELECT calls, rated, unrated, totals, buy_rated, buy_unrated, buy_totals FROM billruns "
            "WHERE status = 'closed'",
        )
        lines = q(
            billing,
            "SELECT account_id, currency, destination, call_type, calls, billed_seconds, amount FROM invoice_lines "
            "ORDER BY 1, 2, 3, 4",
        )
        fed = q(
            billing,
            "SELECT c.record_key, f.record, f.correction_of, f.account_id, f.billing_group, f.billing_period, "
            'f.start_time, f.local_time, f.seconds, f.billed_seconds, f."from", f."to", f.type, f.sub_type, '
            "f.description, f.destination, f.cost, f.currency FROM billing_feed f JOIN charges c ON c.id = f.charge_id "
            "ORDER BY f.id",
        )
        return run, lines, fed

    direct = run_billrun(billing, "daily", "2026-11-01")
    written = outcome()
    with billing.begin() as conn:
        conn.execute(text("TRUNCATE billing_feed, invoice_lines, charges, billruns CASCADE"))
    charge = billrun._charge
    monkeypatch.setattr(billrun, "_charge", lambda *args, direct: charge(*args, direct=False))
    safe = run_billrun(billing, "daily", "2026-11-01")
    assert outcome() == written
    assert (safe.calls, safe.rated, safe.unrated, safe.totals) == (
        direct.calls,
        direct.rated,
        direct.unrated,
        direct.totals,
    )
    assert (safe.buy_rated, safe.buy_unrated, safe.buy_totals) == (
        direct.buy_rated,
        direct.buy_unrated,
        direct.buy_totals,
    )
    # what the comparison covered: the day's reasons, both sides (bought at 0.04 a minute by the
    # second: 75 s 0.0500, 40 s 0.0267, 61 s 0.0407), the call types as the feed shows them
    assert direct.unrated == {NO_MATCH: 2, NOT_RATABLE: 1, NO_SECONDS: 1, NO_DECK: 2, NOT_IN_FORCE: 1}
    assert (direct.buy_rated, direct.buy_unrated, direct.buy_totals) == (3, {NO_MATCH: 1}, {"EUR": Decimal("0.1174")})
    fed = {r.record_key.split("#")[0]: r for r in written[2]}
    assert [(fed[k].type, fed[k].sub_type, fed[k].description) for k in ("7.1", "7.2", "7.3")] == [
        ("M", "MG", "Calls to Mobile GSM"),
        ("IS", "IN8", "TollFree Inbound"),
        ("S", "S", "National Calls"),
    ]
    assert {fed[k].billing_group for k in ("7.1", "7.2", "7.3")} == {"resellers"}
    assert str(fed["7.3"].local_time) == "2026-11-01 23:30:00"  # Lisbon is on UTC in November
    assert fed["1.1"].billing_group is None and fed["1.1"].billing_period == "2026-11-01"
    assert str(fed["2.2"].local_time) == "2026-11-01 01:00:00"  # Tokyo
