"""The rating engine (issue 11, "Rating"): billed seconds, cost, rounding, CGRateS's arithmetic.

The README's "Rating" section is the specification: its worked examples are tested here one by
one, CGRateS's published anchor and its own test vectors too, and a reference rater written
separately below (second-by-increment walk, rational arithmetic, a dict of prefixes; no code
shared with the engine) agrees with the engine over thousands of random decks and calls.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrflow.billing.bulk_rating import _plain, _shown, compile_rate
from cdrflow.billing.charging import Rater
from cdrflow.billing.model import Deck, DeckVersion, Period, Rate, Slot, Window
from cdrflow.billing.prefixes import PrefixIndex
from cdrflow.billing.rating import (
    NO_MATCH,
    NO_RATE_NOW,
    NO_SECONDS,
    NOT_RATABLE,
    Charge,
    Unrated,
    quote,
    rate_call,
    rate_number,
)
from cdrflow.cli import rate as rate_cli

D = Decimal
DAY = date(2026, 11, 1)


def version(*rates: Rate, **deck: object) -> DeckVersion:
    return DeckVersion(Deck("test", **deck), DAY, rates)  # type: ignore[arg-type]


def cost(rate: Rate, seconds: int, **deck: object) -> Decimal:
    charge = rate_call(version(rate, **deck), rate, seconds)
    assert isinstance(charge, Charge), charge
    return charge.cost


def per_minute(price: str, first: int, then: int) -> tuple[Slot, ...]:
    """The usual first/next increments at one price a minute, as slots."""
    if first == then:
        return (Slot(0, D(price), 60, first),)
    return (Slot(0, D(price), 60, first), Slot(first, D(price), 60, then))


# CGRateS's tutorial RT_10CNT (data/tariffplans/tutorial/Rates.csv): connect 0.2, 0.1 per 60 s
# in 60 s steps from second 0, 0.05 per 60 s in 1 s steps from second 60; DR_*: *up, 4 decimals
RT_10CNT = Rate(
    "1001",
    "tutorial",
    (Slot(0, D("0.1"), 60, 60), Slot(60, D("0.05"), 60, 1)),
    connect_fee=D("0.2"),
    rounding_method="*up",
    rounding_decimals=4,
)


# --- the README's worked examples ---------------------------------------------------------------


@pytest.mark.parametrize(
    "first, then, seconds, billed, expected",
    [
        (60, 60, 1, 60, "0.1000"),
        (60, 60, 60, 60, "0.1000"),
        (60, 60, 61, 120, "0.2000"),
        (30, 6, 1, 30, "0.0500"),
        (30, 6, 31, 36, "0.0600"),
        (30, 6, 65, 66, "0.1100"),
        (1, 1, 61, 61, "0.1017"),  # 0.101666.. up
    ],
)
def test_increments(first, then, seconds, billed, expected):
    rate = Rate("44", "UK", per_minute("0.10", first, then))
    charge = rate_call(version(rate), rate, seconds)
    assert isinstance(charge, Charge)
    assert (charge.billed_seconds, str(charge.cost)) == (billed, expected)


def test_tiers_and_the_cgrates_anchor():
    assert str(cost(RT_10CNT, 61)) == "0.3009"  # 0.2 + 0.1 + 0.05/60 = 0.30083.. up
    assert str(cost(RT_10CNT, 61, rounding_scope="increment")) == "0.3009"
    assert str(cost(RT_10CNT, 30)) == "0.3000"  # connect + the first 60 s block
    # 150 s: 0.2 + 0.1 + 90 x 0.05/60 = 0.375 exactly; CGRateS rounds the 1 s increment to
    # 0.00083 (5 decimals) first: 0.2 + 0.1 + 90 x 0.00083 = 0.3747
    assert str(cost(RT_10CNT, 150)) == "0.3750"
    assert str(cost(RT_10CNT, 150, rounding_scope="increment")) == "0.3747"
    assert str(cost(RT_10CNT, 150, rounding_scope="increment", increment_decimals=6)) == "0.3750"  # 0.37497 up


def test_alignment():
    # a 45 s first block then 30 s steps, 50 s call
    slots = (Slot(0, D("0.60"), 60, 45), Slot(45, D("0.60"), 60, 30))
    rate = Rate("49", "DE", slots)
    slot_aligned = rate_call(version(rate), rate, 50)
    zero_aligned = rate_call(version(rate, alignment="zero"), rate, 50)
    assert isinstance(slot_aligned, Charge) and isinstance(zero_aligned, Charge)
    assert (slot_aligned.billed_seconds, str(slot_aligned.cost)) == (75, "0.7500")  # Kazoo, CGRateS
    assert (zero_aligned.billed_seconds, str(zero_aligned.cost)) == (60, "0.6000")  # A2Billing


def test_an_increment_that_runs_past_the_next_slot_covers_it():
    # CGRateS roundTimeSpansToIncrement: the first 60 s block covers second 30 onwards
    rate = Rate("49", "DE", (Slot(0, D("1"), 60, 60), Slot(30, D("9"), 60, 1)))
    charge = rate_call(version(rate), rate, 45)
    assert isinstance(charge, Charge)
    assert (charge.billed_seconds, str(charge.cost), len(charge.slots)) == (60, "1.0000", 1)
    charge = rate_call(version(rate), rate, 61)
    assert isinstance(charge, Charge)
    assert [(s.start, s.seconds) for s in charge.slots] == [(0, 60), (60, 1)]
    assert str(charge.cost) == "1.1500"


def test_minimums():
    rate = Rate("7", "RU", per_minute("0.30", 1, 1), minimum_seconds=30, connect_fee=D("0.05"))
    billed = rate_call(version(rate), rate, 10)
    assert isinstance(billed, Charge)
    assert (billed.billed_seconds, str(billed.cost), billed.minimum_applied) == (30, "0.2000", True)
    free = rate_call(version(rate, minimum_policy="free"), rate, 10)
    assert isinstance(free, Charge)
    assert (free.billed_seconds, str(free.cost), free.free_under_minimum) == (0, "0.0000", True)
    assert str(cost(rate, 30, minimum_policy="free")) == "0.2000"  # not under it: billed
    with_charge = Rate("7", "RU", per_minute("0.30", 1, 1), minimum_charge=D("0.25"))
    assert str(cost(with_charge, 10)) == "0.2500"  # 0.05 raised to the minimum charge
    assert str(cost(with_charge, 60)) == "0.3000"


def test_rounding_methods_and_decimals():
    rate = Rate("1", "US", (Slot(0, D("0.0125"), 60, 1),))  # 0.0125 per minute, 1 s steps
    # 30 s: 0.00625; 18 s: 0.00375
    assert str(cost(rate, 30, rounding_method="up", rounding_decimals=3)) == "0.007"
    assert str(cost(rate, 30, rounding_method="down", rounding_decimals=3)) == "0.006"
    assert str(cost(rate, 30, rounding_method="half_up", rounding_decimals=4)) == "0.0063"
    assert str(cost(rate, 30, rounding_method="half_even", rounding_decimals=4)) == "0.0062"
    assert str(cost(rate, 18, rounding_method="half_even", rounding_decimals=4)) == "0.0038"
    assert str(cost(rate, 30, rounding_method="*middle", rounding_decimals=2)) == "0.01"
    own = Rate("1", "US", rate.slots, rounding_method="down", rounding_decimals=2)  # the rate's own wins
    assert str(cost(own, 30, rounding_method="up", rounding_decimals=4)) == "0.00"


def test_max_cost():
    rate = Rate("1", "US", (Slot(0, D("1"), 1, 1),), max_cost=D("10"), max_cost_strategy="*free")
    charge = rate_call(version(rate), rate, 1800)
    assert isinstance(charge, Charge) and charge.max_cost_applied
    assert str(charge.cost) == "10.0000"
    disconnect = Rate("1", "US", rate.slots, max_cost=D("10"), max_cost_strategy="*disconnect")
    assert str(cost(disconnect, 1800)) == "1800.0000"  # a finished call is charged in full


def test_unanswered_and_unrated():
    v = version(RT_10CNT)
    index = PrefixIndex.of(v)
    zero = rate_number(v, index, "+10015551234", 0)
    assert isinstance(zero, Charge) and zero.cost == 0 and zero.billed_seconds == 0 and zero.slots == ()
    assert rate_number(v, index, "+10015551234", None) == Unrated(NO_SECONDS)
    assert rate_number(v, index, "+4930123456", 60) == Unrated(NO_MATCH)
    for bad in ("*72", "sip:alice@example.com", "", None, "+", "10 01", "１００１"):
        assert rate_number(v, index, bad, 60) == Unrated(NOT_RATABLE), bad


def test_longest_prefix_wins():
    rates = [Rate(p, p, (Slot(0, D(i + 1), 60, 60),)) for i, p in enumerate(["4", "44", "447", "4475", "+49"])]
    index = PrefixIndex(rates)
    assert index.match("+447512345678").prefix == "4475"  # type: ignore[union-attr]
    assert index.match("447612345678").prefix == "447"  # type: ignore[union-attr]
    assert index.match("+4930").prefix == "+49"  # type: ignore[union-attr]
    assert index.match("4") is not None and index.match("3") is None
    numbers = pa.array(["+447512345678", "447612345678", "4", "3", None, "*72", "+4930"])
    positions = index.match_array(numbers).to_pylist()
    assert positions == [3, 2, 0, None, None, None, 4]


# --- CGRateS's own test vectors -----------------------------------------------------------------
# engine/loader_csv_test.go defines the rates; engine/calldesc_test.go the expected costs.

# DY,0.15,0.05,60s,1s,0s with RT_DY,RET,DY,*up,2 (loader_csv_test.go)
CGR_DY = Rate(
    "0723", "RET", (Slot(0, D("0.05"), 60, 1),), connect_fee=D("0.15"), rounding_method="*up", rounding_decimals=2
)
# MX,0,1,1s,1s,0s with MX_FREE,RET,MX,*middle,4,10,*free and MX_DISC ... 10,*disconnect
CGR_MX_FREE = Rate(
    "0723",
    "RET",
    (Slot(0, D("1"), 1, 1),),
    rounding_method="*middle",
    rounding_decimals=4,
    max_cost=D("10"),
    max_cost_strategy="*free",
)
CGR_MX_DISC = Rate(
    "0723",
    "RET",
    (Slot(0, D("1"), 1, 1),),
    rounding_method="*middle",
    rounding_decimals=4,
    max_cost=D("10"),
    max_cost_strategy="*disconnect",
)


@pytest.mark.parametrize("decimals", [5, 6])  # cgrates.json's default; the engine tests' SetRoundingDecimals(6)
@pytest.mark.parametrize(
    "name, rate, seconds, expected",
    [
        ("TestGetCostRoundingIssue", CGR_DY, 24, D("0.17")),  # 13:29:27 -> 13:29:51
        ("TestDebitRoundingRefund", CGR_DY, 180, D("0.3")),  # 13:50 -> 13:53
        ("TestGetCostWithMaxCostFree", CGR_MX_FREE, 1800, D("10")),  # 19:00 -> 19:30
        ("TestGetCostWithMaxCost", CGR_MX_DISC, 1800, D("1800")),  # 06:00 -> 06:30, *disconnect
    ],
)
def test_cgrates_calldesc_vectors(name, rate, seconds, expected, decimals):
    assert cost(rate, seconds, rounding_scope="increment", increment_decimals=decimals) == expected, name


def test_cgrates_increment_rounding():
    # engine/timespans.go createIncrementsSlice, as TestTimespanCreateIncrements shows it
    # (60.2 over 3 increments: 20.066667 each at 6 decimals): a 30 s piece at 2.0 per 7 s in
    # 10 s steps costs 8.571429 (6 decimals), 2.857143 per increment, 8.571429 again in all;
    # at 5 decimals 8.57143 -> 2.85714 x 3 = 8.57142
    rate = Rate("1", "x", (Slot(0, D("2.0"), 7, 10),), rounding_method="*middle", rounding_decimals=6)
    assert cost(rate, 30, rounding_scope="increment", increment_decimals=6) == D("8.571429")
    assert cost(rate, 30, rounding_scope="increment", increment_decimals=5) == D("8.57142")
    assert cost(rate, 30) == D("8.571429")  # exact: 60/7 half up


def test_cgrates_max_cost_on_running_sums():
    # calldesc.go GetCost: MaxCostSoFar += cost (the running cost) after each timespan, so with
    # two timespans *free caps once connect + first + (connect + first + second) >= MaxCost
    rate = Rate(
        "1",
        "x",
        (Slot(0, D("0.3"), 60, 60), Slot(60, D("0.06"), 60, 1)),
        rounding_method="*up",
        rounding_decimals=4,
        max_cost=D("0.35"),
        max_cost_strategy="*free",
    )
    assert cost(rate, 61, rounding_scope="increment") == D("0.35")  # 0.3 + 0.3001 >= 0.35
    assert cost(rate, 61) == D("0.3010")  # native: the cost, capped only above 0.35


def test_cgrates_zero_decimals_round_nothing():
    # callcost.go GetLongestRounding: only decimals above 0 set a method; with 0 the cost stays
    rate = Rate("1", "x", (Slot(0, D("0.05"), 60, 1),), rounding_method="*up", rounding_decimals=0)
    assert cost(rate, 90, rounding_scope="increment") == D("0.0747")
    assert cost(rate, 90) == D("1")  # native: 0 decimals means whole units


# --- quote and the command ----------------------------------------------------------------------


def test_quote():
    v = version(RT_10CNT, Rate("1", "NANP", per_minute("0.02", 6, 6)), rounding_scope="increment")
    result = quote(v, "+10015550100", 61)
    assert (result["prefix"], result["billed_seconds"], result["cost"]) == ("1001", 61, "0.3009")
    assert [s["seconds"] for s in result["slots"]] == [60, 1]
    json.dumps(result)
    assert quote(v, "+4930", 61)["unrated"] == NO_MATCH
    assert quote(v, "abc", 61)["unrated"] == NOT_RATABLE
    text = rate_cli.render(quote(v, "+12125550100", 7))
    assert "NANP" in text and "0.0040" in text


def test_quote_command(monkeypatch, capsys):
    from cdrflow.billing import decks
    from cdrflow.cli import common
    from cdrflow.cli.main import main

    class Conn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Engine:
        def connect(self):
            return Conn()

    v = version(RT_10CNT)
    monkeypatch.setattr(common, "engine", lambda: Engine())
    monkeypatch.setattr(decks, "load_version", lambda conn, name, at: v if name == "test" else None)
    monkeypatch.setattr(decks, "get_deck", lambda conn, name: None)
    assert main(["rate", "quote", "--deck", "test", "--to", "+10015550100", "--seconds", "61", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["prefix"], out["billed_seconds"], out["cost"]) == ("1001", 61, "0.3009")
    assert main(["rate", "quote", "--deck", "test", "--to", "+10015550100", "--seconds", "61"]) == 0
    assert "0.3009" in capsys.readouterr().out
    assert main(["rate", "quote", "--deck", "nope", "--to", "+1001", "--seconds", "61"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == "error: unknown deck 'nope' (cdrflow rates import FILE --deck NAME creates one)"
    )
    assert main(["rate", "quote", "--deck", "test", "--to", "+4930", "--seconds", "61"]) == 1
    assert capsys.readouterr().err.strip() == "error: +4930: no prefix match in deck 'test'"


# --- the reference rater --------------------------------------------------------------------------
# Written apart from the engine: it walks the call one increment at a time, in rational numbers.


def ref_match(prefixes: dict[str, int], number: str) -> int | None:
    digits = number.removeprefix("+")
    for n in range(len(digits), 0, -1):
        if digits[:n] in prefixes:
            return prefixes[digits[:n]]
    return None


def ref_round(x: Fraction, places: int, how: str) -> Decimal:
    how = {"*up": "up", "*down": "down", "*middle": "half_up", "middle": "half_up"}.get(how, how)
    scaled = x * 10**places
    low = scaled.numerator // scaled.denominator
    rest = scaled - low
    if how == "up":
        n = low + (1 if rest > 0 else 0)
    elif how == "down":
        n = low
    elif how == "half_up":
        n = low + (1 if rest >= Fraction(1, 2) else 0)
    else:  # half_even
        n = low + (1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and low % 2 == 1) else 0)
    return Decimal(n).scaleb(-places)


def ref_half_up(x: Fraction, places: int) -> Fraction:
    return Fraction(ref_round(x, places, "half_up"))


def ref_rate(deck: Deck, rate: Rate, seconds: int) -> tuple[int, Decimal]:
    """(billed seconds, cost) of one call."""
    how = rate.rounding_method or deck.rounding_method
    places = deck.rounding_decimals if rate.rounding_decimals is None else rate.rounding_decimals
    if seconds == 0 or (deck.minimum_policy == "free" and seconds < rate.minimum_seconds):
        return 0, ref_round(Fraction(0), places, how)
    if deck.minimum_policy == "bill":
        seconds = max(seconds, rate.minimum_seconds)
    # walk: at second t, the slot whose start is the last one <= t; one increment at a time
    steps: list[tuple[int, int]] = []  # (slot number, seconds of the step)
    t = 0
    while t < seconds:
        k = max(i for i, s in enumerate(rate.slots) if s.start <= t)
        inc = rate.slots[k].increment
        step = inc - t % inc if deck.alignment == "zero" else inc
        steps.append((k, step))
        t += step
    # pieces: consecutive steps in one slot
    pieces: list[list[int]] = []  # [slot, seconds, number of steps]
    for k, step in steps:
        if pieces and pieces[-1][0] == k:
            pieces[-1][1] += step
            pieces[-1][2] += 1
        else:
            pieces.append([k, step, 1])
    billed = sum(p[1] for p in pieces)
    free_cap = rate.max_cost is not None and rate.max_cost > 0 and rate.max_cost_strategy in ("*free", "free")
    if deck.rounding_scope == "call":
        total = Fraction(rate.connect_fee)
        for k, secs, _ in pieces:
            total += Fraction(secs) * Fraction(rate.slots[k].price) / rate.slots[k].unit
    else:  # CGRateS: per timespan, per increment, connect fee with the first, max cost on running sums
        g = deck.increment_decimals
        total, seen = Fraction(0), Fraction(0)
        for i, (k, secs, count) in enumerate(pieces):
            slot = rate.slots[k]
            each = ref_half_up(ref_half_up(Fraction(secs) * Fraction(slot.price) / slot.unit, g) / count, g)
            span = each * count
            if i == 0:
                span = ref_half_up(span + Fraction(rate.connect_fee), g)
            total += span
            seen += total
            if free_cap and seen >= Fraction(rate.max_cost):  # type: ignore[arg-type]
                total = seen = Fraction(rate.max_cost)  # type: ignore[arg-type]
    total = max(total, Fraction(rate.minimum_charge))
    if free_cap:
        total = min(total, Fraction(rate.max_cost))  # type: ignore[arg-type]
    if deck.rounding_scope == "increment" and places == 0:
        return billed, Decimal(total.numerator) / Decimal(total.denominator)
    return billed, ref_round(total, places, how)


money = st.builds(lambda n, p: Decimal(n).scaleb(-p), st.integers(0, 30000), st.integers(0, 5))


@st.composite
def slots(draw) -> tuple[Slot, ...]:
    starts = [0] + sorted(draw(st.sets(st.integers(1, 400), max_size=3)))
    return tuple(
        Slot(
            start, draw(money), draw(st.sampled_from([1, 6, 30, 60, 7])), draw(st.sampled_from([1, 6, 10, 30, 45, 60]))
        )
        for start in starts
    )


@st.composite
def decks_and_rates(draw) -> tuple[Deck, Rate]:
    deck = Deck(
        "random",
        rounding_method=draw(st.sampled_from(["up", "down", "half_up", "half_even"])),
        rounding_decimals=draw(st.integers(0, 6)),
        alignment=draw(st.sampled_from(["slot", "zero"])),
        minimum_policy=draw(st.sampled_from(["bill", "free"])),
        rounding_scope=draw(st.sampled_from(["call", "increment"])),
        increment_decimals=draw(st.integers(4, 7)),
    )
    return deck, random_rate(draw)


def random_rate(draw, period: str = "") -> Rate:
    return Rate(
        "1",
        "random",
        draw(slots()),
        connect_fee=draw(st.sampled_from([D(0), D("0.2"), D("0.0125"), D("1.5")])),
        minimum_seconds=draw(st.sampled_from([0, 0, 10, 30, 61, 90])),
        minimum_charge=draw(st.sampled_from([D(0), D(0), D("0.05"), D("0.333")])),
        rounding_method=draw(st.sampled_from([None, None, "*up", "*down", "*middle"])),
        rounding_decimals=draw(st.sampled_from([None, None, 0, 2, 4])),
        max_cost=draw(st.sampled_from([None, None, D("0.5"), D("3"), D("0.12345")])),
        max_cost_strategy=draw(st.sampled_from(["*free", "*disconnect"])),
        period=period,
    )


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decks_and_rates(), st.lists(st.integers(0, 1500), min_size=1, max_size=5))
def test_engine_agrees_with_the_reference(deck_and_rate, calls):
    deck, rate = deck_and_rate
    v = DeckVersion(deck, DAY, (rate,))
    for seconds in calls:
        charge = rate_call(v, rate, seconds)
        assert isinstance(charge, Charge)
        billed, expected = ref_rate(deck, rate, seconds)
        assert charge.billed_seconds == billed
        assert charge.cost == expected
        if not (
            deck.rounding_scope == "increment"
            and (rate.rounding_decimals if rate.rounding_decimals is not None else deck.rounding_decimals) == 0
        ):
            assert str(charge.cost) == str(expected)  # to the last decimal, places included


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decks_and_rates(), st.lists(st.integers(0, 1500), min_size=1, max_size=5))
def test_compiled_rates_agree_with_the_reference(deck_and_rate, calls):
    """The billrun's integer path (bulk_rating) writes, for every rate of the common shape, the
    same billed seconds and cost as the reference rater and the same COPY text (breakdown JSON
    included, byte for byte) as rate_call's charge; other shapes are left to rate_call."""
    deck, rate = deck_and_rate
    rate = dataclasses.replace(rate, destination='Ville "Ouest"\tmobile', call_type="I")
    v = DeckVersion(deck, DAY, (rate,))
    compiled = compile_rate(v, 7, rate)
    capped = rate.max_cost is not None and rate.max_cost_strategy == "*free"
    assert (compiled is None) == (deck.rounding_scope == "increment" or capped)
    if compiled is None:
        return
    rater = Rater.__new__(Rater)  # only its formatting of rate_call's charge is used
    for seconds in calls:
        row = compiled.row(seconds)
        assert row == rater._row(deck.name, 7, seconds, rate_call(v, rate, seconds))
        fields = row.split("\t")
        billed, expected = ref_rate(deck, rate, seconds)
        assert (int(fields[7]), fields[8]) == (billed, str(expected))
        assert json.loads(fields[10].replace("\\\\", "\\"))["cost"] == str(expected)


prefix_text = st.text("0123456789", min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(prefix_text, st.just(0), max_size=60),
    st.lists(st.text("0123456789", min_size=1, max_size=12), max_size=30),
)
def test_prefix_index_agrees_with_the_reference(prefixes, numbers):
    rates = [Rate(p, p, (Slot(0, D(1), 60, 60),)) for p in prefixes]
    ref = {p: i for i, p in enumerate(prefixes)}
    index = PrefixIndex(rates)
    arrow = index.match_array(pa.array(["+" + n for n in numbers], pa.string())).to_pylist()
    for number, by_arrow in zip(numbers, arrow, strict=True):
        expected = ref_match(ref, number)
        found = index.match(number)
        assert (None if found is None else rates.index(found)) == expected
        assert by_arrow == expected


# --- the reference rater, with time-of-day periods ----------------------------------------------
# Also apart from the engine: the billed increments come from the rate of the period the call starts
# in; then every billed second is looked up on the deck's wall clock (zoneinfo, one second at a
# time) and priced by the rate of its period, at that rate's slot for the second its piece starts.


def ref_period(periods: tuple[Period, ...], zone: str, moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    second = local.hour * 3600 + local.minute * 60 + local.second
    for p in periods:
        for w in p.windows:
            if local.isoweekday() in w.weekdays and w.start <= second < w.end:
                return p.name
    return ""


def ref_rate_at(v: DeckVersion, rates: list[Rate], at: datetime, seconds: int) -> tuple[int, Decimal] | None:
    """(billed seconds, cost) of a call starting ``at``, None when some second has no rate."""
    deck = v.deck
    by = {r.period: r for r in rates}

    def rate_at(s: int) -> Rate | None:
        return by.get(ref_period(v.periods, deck.timezone, at + timedelta(seconds=s))) or by.get("")

    first = rate_at(0)
    if first is None:
        return (0, Decimal(0)) if seconds == 0 else None  # unanswered: free at any time
    how = first.rounding_method or deck.rounding_method
    places = deck.rounding_decimals if first.rounding_decimals is None else first.rounding_decimals
    if seconds == 0 or (deck.minimum_policy == "free" and seconds < first.minimum_seconds):
        return 0, ref_round(Fraction(0), places, how)
    if deck.minimum_policy == "bill":
        seconds = max(seconds, first.minimum_seconds)
    pieces: list[list[int]] = []  # [slot of the first rate, start, seconds]
    t = 0
    while t < seconds:
        k = max(i for i, s in enumerate(first.slots) if s.start <= t)
        inc = first.slots[k].increment
        step = inc - t % inc if deck.alignment == "zero" else inc
        if pieces and pieces[-1][0] == k:
            pieces[-1][2] += step
        else:
            pieces.append([k, t, step])
        t += step
    spans: list[list] = []  # [rate, price, unit, increment, seconds, piece]
    for n, (k, start, secs) in enumerate(pieces):
        for s in range(start, start + secs):
            r = rate_at(s)
            if r is None:
                return None
            if spans and spans[-1][0] is r and spans[-1][5] == n:
                spans[-1][4] += 1
            else:
                slot = [x for x in r.slots if x.start <= start][-1]
                spans.append([r, slot.price, slot.unit, first.slots[k].increment, 1, n])
    billed = sum(span[4] for span in spans)
    free_cap = first.max_cost is not None and first.max_cost > 0 and first.max_cost_strategy in ("*free", "free")
    if deck.rounding_scope == "call":
        total = Fraction(first.connect_fee) + sum(Fraction(sp[4]) * Fraction(sp[1]) / sp[2] for sp in spans)
    else:
        g = deck.increment_decimals
        total, seen = Fraction(0), Fraction(0)
        for i, (_, price, unit, inc, secs, _) in enumerate(spans):
            count = -(-secs // inc)
            cost = ref_half_up(ref_half_up(Fraction(secs) * Fraction(price) / unit, g) / count, g) * count
            if i == 0:
                cost = ref_half_up(cost + Fraction(first.connect_fee), g)
            total += cost
            seen += total
            if free_cap and seen >= Fraction(first.max_cost):  # type: ignore[arg-type]
                total = seen = Fraction(first.max_cost)  # type: ignore[arg-type]
    total = max(total, Fraction(first.minimum_charge))
    if free_cap:
        total = min(total, Fraction(first.max_cost))  # type: ignore[arg-type]
    if deck.rounding_scope == "increment" and places == 0:
        return billed, Decimal(total.numerator) / Decimal(total.denominator)
    return billed, ref_round(total, places, how)


# each zone's days the clocks change (spring forward, fall back; Lord Howe by half an hour)
DST_DAYS = {
    "UTC": [date(2026, 3, 29)],
    "Europe/Amsterdam": [date(2026, 3, 29), date(2026, 10, 25)],
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Australia/Lord_Howe": [date(2026, 10, 4), date(2026, 4, 5)],
    "Asia/Kolkata": [date(2026, 3, 29)],
}


@st.composite
def profiled_calls(draw) -> tuple[DeckVersion, list[Rate], list[tuple[datetime, int]]]:
    deck, _ = draw(decks_and_rates())
    deck = Deck(**{**deck.__dict__, "timezone": draw(st.sampled_from(sorted(DST_DAYS)))})
    windows: dict[str, list[Window]] = {}
    for day in range(1, 8):
        # quarter hours, often around 02:00-03:00 where the clocks change
        hours = st.one_of(st.integers(1, 95), st.integers(6, 14))
        cuts = sorted(draw(st.sets(hours.map(lambda q: q * 900), max_size=4)))
        if draw(st.booleans()):
            cuts = sorted({*cuts, draw(st.integers(1, 86399))})
        for a, b in zip([0, *cuts], [*cuts, 86400], strict=True):
            label = draw(st.sampled_from(["", "p1", "p2"]))
            if label:
                windows.setdefault(label, []).append(Window(frozenset({day}), a, b))
    periods = tuple(Period(name, tuple(ws)) for name, ws in windows.items())
    names = [""] + [p.name for p in periods]
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    rates = [random_rate(draw, period) for period in chosen]
    version = DeckVersion(deck, DAY, tuple(rates), periods)
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        # near a boundary of the day: a window's start or end, on a day around a DST change
        shift = draw(st.sampled_from([0, 0, 0, -1, 1, 2, 3, 4, 5, 6]))
        day = draw(st.sampled_from(DST_DAYS[deck.timezone])) + timedelta(days=shift)
        marks = [w.start for p in periods for w in p.windows] + [w.end for p in periods for w in p.windows]
        marks += [2 * 3600, 3 * 3600]  # and the hours the clocks change
        local = datetime.combine(day, datetime.min.time()) + timedelta(seconds=draw(st.sampled_from(marks or [0])))
        moment = local.replace(tzinfo=ZoneInfo(deck.timezone), fold=draw(st.integers(0, 1))).astimezone(UTC)
        moment -= timedelta(seconds=draw(st.integers(0, 1800)), microseconds=draw(st.sampled_from([0, 0, 250000])))
        calls.append((moment, draw(st.integers(0, 1500))))
    return version, rates, calls


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiled_calls())
def test_engine_agrees_with_the_reference_on_profiled_decks(case):
    version, rates, calls = case
    index = PrefixIndex.of(version)
    for at, seconds in calls:
        result = rate_number(version, index, "+1555", seconds, at)
        expected = ref_rate_at(version, rates, at, seconds)
        if expected is None:
            assert result == Unrated(NO_RATE_NOW), (at, seconds)
            continue
        assert isinstance(result, Charge), (at, seconds, result)
        billed, cost = expected
        assert result.billed_seconds == billed, (at, seconds)
        assert result.cost == cost, (at, seconds)
        if seconds and not (
            version.deck.rounding_scope == "increment"
            and (result.cost.as_tuple().exponent == 0 or cost.as_tuple().exponent == 0)
        ):
            assert str(result.cost) == str(cost), (at, seconds)


def test_engine_agrees_with_the_reference_across_clock_changes():
    """Every zone's DST days, periods changing every 25 minutes around the change (never at the
    hour the clocks jump), a call starting every 10 minutes: the engine and the reference agree."""
    quarter = [Window(frozenset(range(1, 8)), 3900 + q * 1500, 5400 + q * 1500) for q in range(8)]
    periods = (Period("odd", tuple(quarter[1::2])), Period("even", tuple(quarter[0::2])))
    rates = [
        Rate("1", "x", (Slot(0, D("0.60"), 60, 1),)),
        Rate("1", "x", (Slot(0, D("0.06"), 60, 1),), period="odd"),
        Rate("1", "x", (Slot(0, D("6"), 60, 1),), period="even"),
    ]
    for zone, days in DST_DAYS.items():
        version = DeckVersion(Deck("dst", timezone=zone, rounding_decimals=6), DAY, tuple(rates), periods)
        index = PrefixIndex.of(version)
        for day in days:
            start = datetime.combine(day, datetime.min.time()).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
            for minutes in range(30, 270, 10):
                at = start + timedelta(minutes=minutes)
                for seconds in (299, 1800):
                    result = rate_number(version, index, "1", seconds, at)
                    assert isinstance(result, Charge)
                    assert (result.billed_seconds, result.cost) == ref_rate_at(version, rates, at, seconds), (at, zone)


@given(st.integers(-(10**25), 10**25) | st.integers(-1000, 1000).map(lambda n: n * 10**9), st.integers(0, 12))
def test_amounts_are_written_as_decimal_writes_them(q, places):
    """The integer rater writes an amount of ``q`` units of 10**-places with string operations: the
    same text as Decimal's fixed-point format, with and without its trailing zeros (up to 25
    digits: past Decimal's 28 digits of precision its scaleb rounds; the string operations do not)."""
    assert _plain(q, places) == format(Decimal(q).scaleb(-places), "f")
    assert _shown(q, places) == format(Decimal(q).scaleb(-places).normalize(), "f")
