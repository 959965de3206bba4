"""Time-of-day and weekday rate profiles (issue 11): a call priced by the period each of its
seconds starts in, split where the period changes (as CDRTool does); periods in the deck's time
zone, DST days included; the importers (cdrflow CSV period lines, CDRTool profiles.csv and
customers.csv, CGRateS Timings.csv); storage; what a billrun's rater and `cdrflow rate quote` show.
The reference rater that agrees with the engine on random profiled decks is in test_rating.py."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import run_cli

from cdrflow.billing import decks
from cdrflow.billing.charging import Decks, Rater
from cdrflow.billing.deck_files import DeckRefused, cdrflow_csv, cdrtool, cgrates
from cdrflow.billing.model import Deck, DeckVersion, Period, Rate, Slot, Window
from cdrflow.billing.periods import Clock
from cdrflow.billing.prefixes import PrefixIndex
from cdrflow.billing.rating import NO_RATE_NOW, Charge, Unrated, rate_call, rate_number

D = Decimal
DAY = date(2026, 1, 1)
WORKDAYS = frozenset({1, 2, 3, 4, 5})
PEAK = Period("peak", (Window(WORKDAYS, 8 * 3600, 19 * 3600),))
WEEKEND = Period("weekend", (Window(frozenset({6, 7}), 0, 86400),))
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
HEADER = (
    "prefix,destination,call_type,call_sub_type,rate_per_minute,connect_fee,"
    "first_increment,next_increment,minimum_seconds,minimum_charge,period"
)


def rate(prefix: str, price: str, step: int = 1, fee: str = "0", period: str = "", **kw) -> Rate:
    return Rate(prefix, f"dest {prefix}", (Slot(0, D(price), 60, step),), connect_fee=D(fee), period=period, **kw)


def deck(*rates: Rate, zone: str = "UTC", periods=(PEAK, WEEKEND), **settings) -> DeckVersion:
    return DeckVersion(Deck("profiled", timezone=zone, **settings), DAY, rates, periods)


def charge(v: DeckVersion, number: str, seconds: int, at: datetime) -> Charge:
    result = rate_number(v, PrefixIndex.of(v), number, seconds, at)
    assert isinstance(result, Charge), result
    return result


def split(c: Charge) -> list[tuple[int, int, str | None]]:
    return [(s.start, s.seconds, s.period) for s in c.slots]


# Monday 2 November 2026
MONDAY = datetime(2026, 11, 2, tzinfo=UTC)
UK = (
    rate("44", "0.01", fee="0.05"),  # off-peak: any other time
    rate("44", "0.02", fee="0.10", period="peak"),
    rate("44", "0.005", period="weekend"),
)


@pytest.mark.parametrize("step", [1, 6, 60])
def test_a_call_across_the_peak_boundary_is_split_at_it(step):
    # 07:59:30 to 08:00:30: 30 s off-peak, 30 s peak, whatever the increment (the increments
    # round the call, the boundary splits it); the connect fee once, the starting rate's
    v = deck(*(r if r.period else rate("44", "0.01", step, fee="0.05") for r in UK))
    c = charge(v, "+442071234567", 60, MONDAY + timedelta(hours=7, minutes=59, seconds=30))
    assert split(c) == [(0, 30, ""), (30, 30, "peak")]
    assert (c.billed_seconds, c.connect_fee, str(c.cost)) == (60, D("0.05"), "0.0650")  # 0.05 + 0.005 + 0.01
    # starting at 08:00:00: all peak, the peak connect fee
    c = charge(v, "+442071234567", 60, MONDAY + timedelta(hours=8))
    assert split(c) == [(0, 60, "peak")] and str(c.cost) == "0.1200"
    # at 18:59:50 for 25 s: 10 s peak, then off-peak
    c = charge(v, "+442071234567", 25, MONDAY + timedelta(hours=18, minutes=59, seconds=50))
    assert split(c)[:2] == [(0, 10, "peak"), (10, c.billed_seconds - 10, "")]


def test_increments_and_the_minimum_come_from_the_starting_rate():
    # 60/60 off-peak with a 90 s minimum; peak 1/1 with no minimum
    off = Rate("44", "UK", (Slot(0, D("0.60"), 60, 60),), minimum_seconds=90)
    on = Rate("44", "UK", (Slot(0, D("1.20"), 60, 1),), period="peak")
    v = deck(off, on)
    # 10 s from 07:59:30: billed 120 s (the 90 s minimum, rounded to 60 s steps), 30 s of it before 08:00
    c = charge(v, "44", 10, MONDAY + timedelta(hours=7, minutes=59, seconds=30))
    assert (c.billed_seconds, c.minimum_applied) == (120, True)
    assert split(c) == [(0, 30, ""), (30, 90, "peak")]
    assert c.cost == D("0.3000") + D("1.8000")
    assert [s.increment for s in c.slots] == [60, 60]  # the starting rate's steps, the period's price
    # the same call starting in the peak: 1 s steps, no minimum
    c = charge(v, "44", 10, MONDAY + timedelta(hours=8))
    assert (c.billed_seconds, str(c.cost)) == (10, "0.2000")


def test_a_call_inside_one_period_costs_what_its_rate_alone_says():
    v = deck(*UK)
    for at, r in ((MONDAY + timedelta(hours=9), UK[1]), (MONDAY + timedelta(hours=20), UK[0])):
        for seconds in (0, 1, 59, 61, 600):
            alone = rate_call(DeckVersion(v.deck, DAY, (r,)), r, seconds)
            profiled = charge(v, "44", seconds, at)
            assert isinstance(alone, Charge)
            assert (profiled.cost, profiled.billed_seconds) == (alone.cost, alone.billed_seconds)
    # a prefix with one rate is rated as if the deck had no periods (no period in its breakdown)
    plain = deck(*UK, rate("33", "0.03"))
    c = charge(plain, "+33612345678", 60, MONDAY + timedelta(hours=7, minutes=59, seconds=30))
    assert split(c) == [(0, 60, None)] and str(c.cost) == "0.0300"


def test_weekend_and_weekday():
    v = deck(*UK)
    friday, saturday = MONDAY + timedelta(days=4), MONDAY + timedelta(days=5)
    assert charge(v, "44", 60, friday + timedelta(hours=10)).cost == D("0.1200")  # peak
    assert charge(v, "44", 60, saturday + timedelta(hours=10)).cost == D("0.0050")  # weekend
    assert charge(v, "44", 60, friday + timedelta(hours=21)).cost == D("0.0600")  # weekday evening
    # Friday 23:59:00 for two minutes: one minute off-peak, one of the weekend
    c = charge(v, "44", 120, friday + timedelta(hours=23, minutes=59))
    assert split(c) == [(0, 60, ""), (60, 60, "weekend")]
    assert str(c.cost) == "0.0650"  # 0.05 + 0.01 + 0.005
    # Sunday 23:59:30 to Monday 00:00:30: weekend, then off-peak (the week wraps)
    c = charge(v, "44", 60, MONDAY + timedelta(days=6, hours=23, minutes=59, seconds=30))
    assert split(c) == [(0, 30, "weekend"), (30, 30, "")]


def test_a_prefix_without_a_rate_for_the_moment_is_unrated_then():
    v = deck(rate("44", "0.02", period="peak"))
    assert charge(v, "44", 60, MONDAY + timedelta(hours=9)).cost == D("0.0200")
    index = PrefixIndex.of(v)
    assert rate_number(v, index, "44", 60, MONDAY + timedelta(hours=20)) == Unrated(NO_RATE_NOW)
    # starting in the peak but running past 19:00 into no rate: unrated too
    assert rate_number(v, index, "44", 120, MONDAY + timedelta(hours=18, minutes=59)) == Unrated(NO_RATE_NOW)
    assert charge(v, "44", 0, MONDAY + timedelta(hours=20)).cost == 0  # unanswered: free, whenever
    with pytest.raises(ValueError, match="priced by period"):
        rate_number(v, index, "44", 60)


def test_the_deck_time_zone_and_dst_days():
    night = Period("night", (Window(frozenset(range(1, 8)), 2 * 3600, 3 * 3600),))
    v = deck(rate("44", "0.03"), rate("44", "0.01", period="night"), zone="Europe/Amsterdam", periods=(night,))
    # fall back, Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET, so 02:00-03:00 happens twice.
    # From 00:30 UTC (02:30 CEST) for two hours: night to 01:00 UTC, night again to 02:00 UTC (03:00
    # CET), then day: 90 minutes at 0.01 and 30 at 0.03
    c = charge(v, "44", 7200, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    assert split(c) == [(0, 5400, "night"), (5400, 1800, "")]
    assert str(c.cost) == "1.8000"
    # spring forward, Sunday 29 March 2026: 02:00-03:00 does not exist, the night is skipped
    c = charge(v, "44", 7200, datetime(2026, 3, 29, 0, 0, tzinfo=UTC))
    assert split(c) == [(0, 7200, "")]
    # ... and a period from 03:00 starts when the clocks jump: 01:50 CET is 10 minutes before it
    early = Period("early", (Window(frozenset(range(1, 8)), 3 * 3600, 4 * 3600),))
    w = deck(rate("44", "0.03"), rate("44", "0.01", period="early"), zone="Europe/Amsterdam", periods=(early,))
    c = charge(w, "44", 3600, datetime(2026, 3, 29, 0, 50, tzinfo=UTC))
    assert split(c) == [(0, 600, ""), (600, 3000, "early")]
    # an ordinary day: 02:00-03:00 CET is 01:00-02:00 UTC
    c = charge(v, "44", 7200, datetime(2026, 11, 4, 0, 30, tzinfo=UTC))
    assert split(c) == [(0, 1800, ""), (1800, 3600, "night"), (5400, 1800, "")]
    # a start given in another offset is the same moment
    same = datetime(2026, 11, 4, 5, 30, tzinfo=timezone(timedelta(hours=5)))
    assert charge(v, "44", 7200, same).cost == c.cost
    # a start between seconds: second s is in the period of the moment it starts
    c = charge(v, "44", 10, datetime(2026, 11, 4, 0, 59, 55, 500000, tzinfo=UTC))
    assert split(c) == [(0, 5, ""), (5, 5, "night")]
    clock = Clock((night,), "Europe/Amsterdam")
    assert clock.timeline(datetime(2026, 11, 4, 0, 59, 55, 500000, tzinfo=UTC), 10) == ((0, ""), (5, "night"))


def test_cgrates_arithmetic_across_a_split():
    # each part is a CGRateS timespan: its cost rounded, the connect fee with the first
    v = deck(*UK, rounding_scope="increment")
    c = charge(v, "44", 60, MONDAY + timedelta(hours=7, minutes=59, seconds=30))
    assert split(c) == [(0, 30, ""), (30, 30, "peak")]
    assert str(c.cost) == "0.0650"


# -- the billrun's rater --------------------------------------------------------------------------


@pytest.fixture
def conn(engine):
    with engine.begin() as c:
        yield c
        c.execute(text("TRUNCATE rate_decks, rate_deck_versions, rates, rate_periods CASCADE"))


def test_stored_periods_come_back_and_the_rater_splits_calls(conn):
    v = deck(*UK, rate("33", "0.03"), zone="Europe/Amsterdam")
    version_id = decks.store(conn, v, "test")
    again = decks.load_version_id(conn, version_id)
    assert sorted(again.periods, key=lambda p: p.name) == sorted(v.periods, key=lambda p: p.name)
    assert sorted(again.rates, key=lambda r: (r.prefix, r.period)) == sorted(
        v.rates, key=lambda r: (r.prefix, r.period)
    )
    assert again.deck.timezone == "Europe/Amsterdam"
    rows = conn.execute(
        text("SELECT period, count(*) FROM rates WHERE version_id = :v GROUP BY 1 ORDER BY 1"), {"v": version_id}
    )
    assert [tuple(r) for r in rows] == [("", 2), ("peak", 1), ("weekend", 1)]

    rater = Rater(Decks(conn))
    local = MONDAY - timedelta(hours=1)  # Monday 00:00 in Amsterdam (CET)
    inside = [rater.rate("profiled", local + timedelta(hours=9, seconds=i), "+4420", 60) for i in range(3)]
    assert len(set(inside)) == 1 and rater.hits == 2  # calls inside one period share a cached rating
    across = rater.rate("profiled", local + timedelta(hours=7, minutes=59, seconds=30), "+4420", 60).split("\t")
    assert across[8] == "0.0650" and rater.hits == 2
    breakdown = json.loads(across[10])
    assert [(s["seconds"], s["period"]) for s in breakdown["slots"]] == [(30, ""), (30, "peak")]
    plain = rater.rate("profiled", local + timedelta(hours=7, minutes=59, seconds=30), "+3320", 60).split("\t")
    assert plain[8] == "0.0300" and "period" not in plain[10]
    # a deck whose time zone is another one cannot take periods made for it
    with pytest.raises(decks.DeckMismatch, match="keeps its time in Europe/Amsterdam, not UTC"):
        decks.store(conn, deck(*UK), "test")
    with pytest.raises(decks.DeckMismatch, match="period night, not defined"):
        decks.store(conn, deck(rate("1", "1", period="night"), zone="Europe/Amsterdam"), "test")


# -- importers --------------------------------------------------------------------------------------


def test_cdrflow_csv_period_lines(tmp_path):
    path = tmp_path / "deck.csv"
    path.write_text(
        "# peak and weekend, in the deck's time zone\n"
        "period,peak,Mon-Fri,08:00-12:00;13:00-19:00\n"
        "period,weekend,Sat;Sun,00:00-24:00,,,,\n"
        f"{HEADER}\n"
        "44,UK,I,,0.01,0.05,60,60,0,0,\n"
        "44,UK,I,,0.02,0.10,60,60,0,0,peak\n"
        "44,UK,I,,0.005,0,60,60,0,0,weekend\n"
        "33,France,I,,0.03,0,1,1,0,0,\n"
    )
    (v,) = cdrflow_csv.read(path, Deck("retail"), DAY).versions
    assert {p.name: p.windows for p in v.periods} == {
        "peak": (Window(WORKDAYS, 8 * 3600, 12 * 3600), Window(WORKDAYS, 13 * 3600, 19 * 3600)),
        "weekend": (Window(frozenset({6, 7}), 0, 86400),),
    }
    assert [(r.prefix, r.period, r.slots[0].price) for r in v.rates] == [
        ("44", "", D("0.01")),
        ("44", "peak", D("0.02")),
        ("44", "weekend", D("0.005")),
        ("33", "", D("0.03")),
    ]
    assert split(charge(v, "44", 120, MONDAY + timedelta(hours=11, minutes=59))) == [(0, 60, "peak"), (60, 60, "")]
    path.write_text(
        "period,peak,Mon-Fri,08:00-19:00\n"
        "period,night,*,18:00-08:00\n"
        "period,late,Mon,18:00-20:00\n"
        "period,bad,Mon-Sun-Fri,25:00-26:00\n"
        f"{HEADER}\n"
        "44,UK,I,,0.01,0,60,60,0,0,peak\n"
        "44,UK,I,,0.01,0,60,60,0,0,peak\n"
        "33,FR,I,,0.01,0,60,60,0,0,evening\n"
    )
    with pytest.raises(DeckRefused) as refused:
        cdrflow_csv.read(path, Deck("retail"), DAY)
    assert refused.value.problems == [
        "deck.csv line 2: period night: 18:00-08:00 does not end after it starts (a night is two ranges)",
        "deck.csv line 4: period bad: days 'Mon-Sun-Fri' are not like Mon-Fri, Sat;Sun or *",
        "deck.csv line 4: period bad: '25:00-26:00' is not a time range like 08:00-19:00",
        "deck.csv line 7: prefix 44 again for period peak (first on line 6)",
        "deck.csv line 8: period 'evening' is not defined by a period line",
        "deck.csv: periods peak and late overlap on Mon from 18:00 to 19:00",
    ]


def cdrtool_folder(tmp_path: Path, weekday: str, weekend: str = "offpeak,24,,0,,0,,0", fallback: str = "") -> Path:
    """CDRTool tables with two rate ids: peak and offpeak, and the default customer's profiles."""
    folder = tmp_path / "cdrtool"
    folder.mkdir(parents=True)
    (folder / "destinations.csv").write_text(
        "Ops,Reseller,Trusted peer,Domain,Subscriber,Destination,Region,Description,Incr,Min Dur,Max Dur,Max Price\n"
        "1,0,,,,44,,UK,60,0,0,\n"
        "1,0,,,,447,,UK Mobile,1,0,0,\n"
        "1,0,,,,33,,France,1,0,0,\n"
        "1,0,,,,49,,Germany,1,0,0,\n"
    )
    (folder / "rates.csv").write_text(
        "Ops,Reseller,Rate,Destination,App,Connect,Duration,Conn In,Duration In\n"
        "1,0,offpeak,44,audio,500,100,,\n"
        "1,0,peak,44,audio,1000,200,,\n"
        "1,0,offpeak,33,audio,0,300,,\n"
        "1,0,peak,33,audio,0,300,,\n"
        "1,0,peak,447,audio,0,900,,\n"
        "1,0,offpeak,49,audio,0,400,,\n"
    )
    (folder / "profiles.csv").write_text(
        "Ops,Reseller,Profile Id,Rate Id1,00-H1,Rate Id2,H1-H2,Rate Id3,H2-H3,Rate Id4,H3-24\n"
        f"1,0,workday,{weekday}\n"
        f"1,0,weekend,{weekend}\n"
    )
    (folder / "customers.csv").write_text(
        "Ops,Reseller,Trusted Peer,Domain,Subscriber,Profile WD,Fallback,Profile WE,Fallback,Timezone,Incr,Min Dur\n"
        f"1,,,,,workday,{fallback},weekend,,Europe/Amsterdam,0,0\n"
        "1,,,example.com,,weekend,,weekend,,UTC,0,0\n"
    )
    return folder


def test_cdrtool_profile_with_two_rate_ids(tmp_path):
    # weekdays: offpeak before 08:00, peak before 19:00, offpeak before 24:00; weekends offpeak
    folder = cdrtool_folder(tmp_path, "offpeak,8,peak,19,offpeak,24,,0")
    imported = cdrtool.read(folder, Deck("retail"), DAY)
    (v,) = imported.versions
    assert v.deck.timezone == "Europe/Amsterdam"  # the customer's Timezone
    assert {p.name: set(p.windows) for p in v.periods} == {
        "offpeak": {
            Window(WORKDAYS, 0, 8 * 3600),
            Window(WORKDAYS, 19 * 3600, 86400),
            Window(frozenset({6, 7}), 0, 86400),
        },
        "peak": {Window(WORKDAYS, 8 * 3600, 19 * 3600)},
    }
    got = {(r.prefix, r.period): (r.slots[0].price, r.connect_fee) for r in v.rates}
    assert got == {
        ("44", "offpeak"): (D("0.01"), D("0.05")),
        ("44", "peak"): (D("0.02"), D("0.1")),
        ("33", ""): (D("0.03"), D(0)),  # one price all week: one any-time rate
        ("447", "peak"): (D("0.09"), D(0)),  # only the peak table has it: no rate off-peak
        ("49", "offpeak"): (D("0.04"), D(0)),
    }
    assert any("1 profile or customer row(s)" in n for n in imported.notes)
    # 07:59:30 Amsterdam (06:59:30 UTC) for 60 s: 30 s off-peak, 30 s peak (Incr 60 rounds the call)
    c = charge(v, "+442071234567", 45, MONDAY + timedelta(hours=6, minutes=59, seconds=30))
    assert split(c) == [(0, 30, "offpeak"), (30, 30, "peak")] and str(c.cost) == "0.0650"
    assert rate_number(v, PrefixIndex.of(v), "+447700900123", 60, MONDAY) == Unrated(NO_RATE_NOW)
    # one table all week is that table alone: no periods, the deck's own time zone
    folder = cdrtool_folder(tmp_path / "2", "peak,24,,0,,0,,0", weekend="peak,24,,0,,0,,0")
    (v,) = cdrtool.read(folder, Deck("retail"), DAY).versions
    assert (v.periods, v.deck.timezone) == ((), "UTC")
    assert {r.prefix: r.slots[0].price for r in v.rates} == {"44": D("0.02"), "447": D("0.09"), "33": D("0.03")}
    # weekdays peak with the weekend profile as fallback: 49 (no peak rate) costs its off-peak
    # price all week, one any-time rate; 447 (no off-peak rate) has no weekend price
    folder = cdrtool_folder(tmp_path / "4", "peak,24,,0,,0,,0", fallback="weekend")
    (v,) = cdrtool.read(folder, Deck("retail"), DAY).versions
    assert {p.name for p in v.periods} == {"peak+offpeak", "offpeak"}
    got = {(r.prefix, r.period): r.slots[0].price for r in v.rates}
    assert got == {
        ("44", "peak+offpeak"): D("0.02"),
        ("44", "offpeak"): D("0.01"),
        ("447", "peak+offpeak"): D("0.09"),
        ("33", ""): D("0.03"),
        ("49", ""): D("0.04"),
    }
    # a profile naming a table rates.csv does not have is refused
    folder = cdrtool_folder(tmp_path / "3", "offpeak,8,special,24,,0,,0")
    with pytest.raises(DeckRefused, match="rate table special of the customer's profiles has no audio rates"):
        cdrtool.read(folder, Deck("retail"), DAY)


def test_cdrtool_sample_is_unchanged(tmp_path):
    # the sample's one profile, grn_premium, uses one table all day: no periods, UTC as before
    imported = cdrtool.read(SAMPLES / "cdrtool-rating-csv", Deck("retail"), DAY)
    (v,) = imported.versions
    assert (len(v.rates), v.periods, v.deck.timezone) == (13126, (), "UTC")
    assert all(r.period == "" for r in v.rates)
    named = cdrtool.read(SAMPLES / "cdrtool-rating-csv", Deck("grn_premium"), DAY).versions[0]
    assert named.rates == v.rates


def cgrates_folder(tmp_path: Path, timings: str, plans: str) -> Path:
    folder = tmp_path / "tp"
    folder.mkdir(parents=True)
    (folder / "Destinations.csv").write_text("#Id,Prefix\nDST_UK,44\nDST_FR,33\n")
    (folder / "Rates.csv").write_text(
        "#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\n"
        "RT_PEAK,0.1,0.02,60s,1s,0s\n"
        "RT_OFF,0.05,0.01,60s,1s,0s\n"
        "RT_FR,0,0.03,60s,1s,0s\n"
    )
    (folder / "DestinationRates.csv").write_text(
        "#Id,DestinationId,RatesTag,RoundingMethod,RoundingDecimals,MaxCost,MaxCostStrategy\n"
        "DR_UK_PEAK,DST_UK,RT_PEAK,*up,4,0,\n"
        "DR_UK_OFF,DST_UK,RT_OFF,*up,4,0,\n"
        "DR_FR,DST_FR,RT_FR,*up,4,0,\n"
    )
    (folder / "Timings.csv").write_text(timings)
    (folder / "RatingPlans.csv").write_text("#Id,DestinationRatesId,TimingTag,Weight\n" + plans)
    return folder


TIMINGS = (
    "#Tag,Years,Months,MonthDays,WeekDays,Time\n"
    "PEAK,*any,*any,*any,1;2;3;4;5,08:00:00\n"
    "OFFPEAK_MORNING,*any,*any,*any,1;2;3;4;5,00:00:00\n"
    "OFFPEAK_EVENING,*any,*any,*any,1;2;3;4;5,19:00:00\n"
    "OFFPEAK_WEEKEND,*any,*any,*any,6;0,00:00:00\n"
    "CHRISTMAS,*any,12,25,*any,00:00:00\n"
)


def test_cgrates_timings(tmp_path):
    plans = (
        "RP_RETAIL,DR_UK_PEAK,PEAK,10\n"
        "RP_RETAIL,DR_UK_OFF,OFFPEAK_MORNING,10\n"
        "RP_RETAIL,DR_UK_OFF,OFFPEAK_EVENING,10\n"
        "RP_RETAIL,DR_UK_OFF,OFFPEAK_WEEKEND,10\n"
        "RP_RETAIL,DR_FR,*any,10\n"
        "RP_RETAIL,DR_UK_PEAK,CHRISTMAS,20\n"
    )
    imported = cgrates.read(cgrates_folder(tmp_path, TIMINGS, plans), DAY)
    (v,) = imported.versions
    assert any("CHRISTMAS is for Months 12, MonthDays 25 only" in n for n in imported.notes)
    windows = {p.name: set(p.windows) for p in v.periods}
    # PEAK from 08:00 beats OFFPEAK_MORNING from 00:00 (same weight, later start), until
    # OFFPEAK_EVENING starts at 19:00
    assert windows == {
        "OFFPEAK_MORNING": {Window(WORKDAYS, 0, 8 * 3600)},
        "PEAK": {Window(WORKDAYS, 8 * 3600, 19 * 3600)},
        "OFFPEAK_EVENING": {Window(WORKDAYS, 19 * 3600, 86400)},
        "OFFPEAK_WEEKEND": {Window(frozenset({6, 7}), 0, 86400)},
    }
    got = {(r.prefix, r.period): r.slots[0].price for r in v.rates}
    assert got == {
        ("33", ""): D("0.03"),  # *any all week
        ("44", "OFFPEAK_MORNING"): D("0.01"),
        ("44", "PEAK"): D("0.02"),
        ("44", "OFFPEAK_EVENING"): D("0.01"),
        ("44", "OFFPEAK_WEEKEND"): D("0.01"),
    }
    c = charge(v, "44", 60, MONDAY + timedelta(hours=18, minutes=59, seconds=30))
    assert split(c) == [(0, 30, "PEAK"), (30, 30, "OFFPEAK_EVENING")]
    assert str(c.cost) == "0.1150"  # CGRateS arithmetic: 0.1 + 0.01 + 0.005
    # the tutorial's *any-only plans have no periods, as before
    assert all(not x.periods for x in cgrates.read(SAMPLES / "cgrates" / "tariffplan_tutorial", DAY).versions)


def test_cgrates_bad_timings(tmp_path):
    timings = "#Tag,Years,Months,MonthDays,WeekDays,Time\nPEAK,*any,*any,*any,1;7,08:00:00;07:00:00\n"
    plans = "RP,DR_UK_PEAK,PEAK,10\nRP,DR_UK_OFF,NIGHT,10\nRP,DR_FR,*any,10\nRP,DR_FR,*any,10\n"
    with pytest.raises(DeckRefused) as refused:
        cgrates.read(cgrates_folder(tmp_path, timings, plans), DAY)
    assert refused.value.problems == [
        "Timings.csv line 2: PEAK: WeekDays '7' is not 0 (Sunday) to 6 (Saturday)",
        "Timings.csv line 2: PEAK: Time '08:00:00;07:00:00' is not HH:MM:SS or HH:MM:SS;HH:MM:SS (start;end)",
    ]
    timings = "#Tag,Years,Months,MonthDays,WeekDays,Time\nPEAK,*any,*any,*any,1;2;3;4;5,08:00:00;19:00:00\n"
    with pytest.raises(DeckRefused) as refused:
        cgrates.read(cgrates_folder(tmp_path / "2", timings, plans), DAY)
    assert refused.value.problems == [
        "RatingPlans.csv line 3: RP: timing NIGHT is not in Timings.csv",
        "RatingPlans.csv line 5: RP: prefix 33 twice at weight 10 (first on line 4)",
    ]


# -- the command line --------------------------------------------------------------------------------


def test_quote_shows_the_split(new_database, tmp_path):
    env = {"CDRFLOW_DATABASE_URL": new_database()}
    path = tmp_path / "retail.csv"
    path.write_text(
        f"period,peak,Mon-Fri,08:00-19:00\n{HEADER}\n44,UK,I,,0.01,0.05,60,60,0,0,\n44,UK,I,,0.02,0.10,60,60,0,0,peak\n"
    )
    args = ("rates", "import", str(path), "--deck", "retail", "--effective-from", "2026-01-01")
    r = run_cli(*args, "--timezone", "Europe/Amsterdam", env=env)
    assert r.returncode == 0, r.stderr
    assert "version 1, 2 rates, 1 periods (Europe/Amsterdam), in force from 2026-01-01" in r.stdout
    assert "  periods  peak: Mon-Fri 08:00-19:00" in r.stdout
    quote = ("rate", "quote", "--deck", "retail", "--to", "+442071234567", "--seconds", "60")
    r = run_cli(*quote, "--at", "2026-11-02T07:59:30+01:00", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "starts:          2026-11-02T07:59:30+01:00 (deck time)" in lines
    assert "  from     0 s (Mon 07:59:30, any time):     30 s at 0.01 per 60 s in 60 s steps = 0.005" in lines
    assert "  from    30 s (Mon 08:00:00, peak):     30 s at 0.02 per 60 s in 60 s steps = 0.01" in lines
    assert "cost:            0.0650 USD" in lines
    r = run_cli(*quote, "--at", "2026-11-02T06:59:30Z", "--json", env=env)  # the same moment in UTC
    result = json.loads(r.stdout)
    assert [(s["seconds"], s["period"], s["amount"]) for s in result["slots"]] == [
        (30, "", "0.005"),
        (30, "peak", "0.01"),
    ]
    assert result["cost"] == "0.0650"
    # the same file for a deck kept in UTC is refused: its periods would be other hours
    r = run_cli(*args, "--timezone", "UTC", env=env)
    assert r.returncode == 1 and "keeps its time in Europe/Amsterdam, not UTC" in r.stderr
    r = run_cli(*args, "--timezone", "Mars/Olympus", env=env)
    assert r.returncode == 1 and "not an IANA time zone" in r.stderr


def test_cdrtool_profile_import_command(new_database, tmp_path):
    env = {"CDRFLOW_DATABASE_URL": new_database()}
    folder = cdrtool_folder(tmp_path, "offpeak,8,peak,19,offpeak,24,,0")
    r = run_cli("rates", "import", str(folder), "--deck", "retail", "--format", "cdrtool", env=env)
    assert r.returncode == 0, r.stderr
    assert "5 rates, 2 periods (Europe/Amsterdam)" in r.stdout
    assert "  added    44           UK 0.01/60s 60/60 +0.05 [offpeak]" in r.stdout
