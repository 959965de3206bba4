"""A CGRateS tariff plan folder as rate decks: each ``RatingPlans.csv`` id is a deck.

Files read (CGRateS's column order; a first line starting with ``#`` is its header, other ``#``
lines are comments):

- ``Destinations.csv``: ``Id,Prefix``: a destination id has one line per prefix.
- ``Rates.csv``: ``Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart``: one line per
  slot; durations as Go writes them (``60s``, ``1m``, ``1m30s``, ``0s``). The connect fee is the
  first line's, as CGRateS takes it (``RateSlots[0].ConnectFee``).
- ``DestinationRates.csv``: ``Id,DestinationId,RatesTag,RoundingMethod,RoundingDecimals,MaxCost,
  MaxCostStrategy``: ``*up``/``*down``/``*middle`` become ``up``/``down``/``half_up``, kept per
  rate; ``MaxCost`` 0 is no cap. ``DestinationId`` ``*any`` is the empty prefix (every number).
- ``RatingPlans.csv``: ``Id,DestinationRatesId,TimingTag,Weight``: a plan's rates are those of its
  destination rates; a prefix bound twice takes the higher weight (same weight: refused).

- ``Timings.csv`` (optional): the ``TimingTag`` of the bindings, as the plan's time-of-day and
  weekday periods (:mod:`.cgrates_timings`); ``*any`` needs none. A plan bound with ``*any``
  only has no periods, as before.

Left out, with a note: bindings whose timing is for some dates only (years, months, days of the
month), and plans whose rates are not in whole seconds (a bare number such as ``1`` is one
nanosecond to CGRateS: SMS and data units, not call seconds). ``RatingProfiles.csv`` (who uses
which plan, from when) is not read: the deck's ``--effective-from`` says when.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from cdrflow.billing.deck_files import Imported, Problems, cgrates_timings, money, prefix_problem
from cdrflow.billing.model import Deck, DeckVersion, Period, Rate, Slot

FILES = {
    "Destinations.csv": 2,
    "Rates.csv": 6,
    "DestinationRates.csv": 7,
    "RatingPlans.csv": 4,
}
ROUNDING = {"*up": "up", "*down": "down", "*middle": "half_up"}
MAX_COST_STRATEGIES = ("*free", "*disconnect")
ANY = "*any"
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": Decimal(1),
    "us": Decimal(1000),
    "µs": Decimal(1000),
    "μs": Decimal(1000),
    "ms": Decimal(10**6),
    "s": Decimal(10**9),
    "m": Decimal(60 * 10**9),
    "h": Decimal(3600 * 10**9),
}


def duration_seconds(text: str) -> Decimal | None:
    """A Go duration (``60s``, ``1m30s``; a bare number is nanoseconds, as CGRateS parses it) in
    seconds; None when it is no duration."""
    text = text.strip()
    if not text:
        return None
    try:
        return Decimal(text) / Decimal(10**9)  # a bare number: nanoseconds
    except ArithmeticError:
        pass
    pos, total = 0, Decimal(0)
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += Decimal(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        return None
    return total / Decimal(10**9)


@dataclass
class _RateGroup:
    slots: list[tuple[int, Slot]]  # (line, slot)
    connect_fee: Decimal
    not_seconds: str | None = None  # why it cannot rate call seconds


@dataclass
class _DestRate:
    line: int
    destination: str
    rates_tag: str
    rounding_method: str
    rounding_decimals: int
    max_cost: Decimal | None
    max_cost_strategy: str | None


def _rows(folder: Path, name: str, problems: Problems) -> list[tuple[int, list[str]]]:
    path = folder / name
    if not path.is_file():
        problems.add(str(folder), f"not a CGRateS tariff plan: {name} is missing")
        return []
    out = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for n, values in enumerate(csv.reader(handle), start=1):
            if not values or not "".join(values).strip() or values[0].lstrip().startswith("#"):
                continue
            values = [v.strip() for v in values]
            if len(values) < FILES[name]:
                problems.add(
                    f"{name} line {n}", f"{len(values)} fields, CGRateS {name} has {FILES[name]}: not a CGRateS {name}"
                )
                continue
            out.append((n, values))
    return out


def read(
    folder: Path, effective_from: date, currency: str = "USD", kind: str = "sell", only: str | None = None
) -> Imported:
    """Every rating plan of ``folder`` (or only the plan ``only``) as a deck version."""
    problems = Problems()
    if not folder.is_dir():
        problems.add(str(folder), "not a CGRateS tariff plan: give its folder")
        problems.check()
    rows = {name: _rows(folder, name, problems) for name in FILES}
    timings = cgrates_timings.read(folder, problems)
    problems.check()

    destinations: dict[str, list[str]] = {}
    for n, (dest_id, prefix, *_) in rows["Destinations.csv"]:
        if why := prefix_problem(prefix):
            problems.add(f"Destinations.csv line {n}", f"{dest_id}: {why}")
            continue
        if prefix in destinations.get(dest_id, []):
            problems.add(f"Destinations.csv line {n}", f"{dest_id}: prefix {prefix} twice")
            continue
        destinations.setdefault(dest_id, []).append(prefix)

    groups: dict[str, _RateGroup] = {}
    for n, (rate_id, fee_text, price_text, unit_text, incr_text, start_text, *_) in rows["Rates.csv"]:
        where = f"Rates.csv line {n}"
        fee = money(fee_text, "ConnectFee", where, problems, blank=Decimal(0))
        price = money(price_text, "Rate", where, problems)
        seconds = {}
        for what, value in (("RateUnit", unit_text), ("RateIncrement", incr_text), ("GroupIntervalStart", start_text)):
            d = duration_seconds(value) if value or what != "GroupIntervalStart" else Decimal(0)
            if d is None:
                problems.add(where, f"{rate_id}: {what} {value!r} is not a duration")
            elif d < 0:
                problems.add(where, f"{rate_id}: {what} {value} is negative")
            elif d == 0 and what != "GroupIntervalStart":
                problems.add(where, f"{rate_id}: {what} is 0")
            else:
                seconds[what] = (d, value)
        if fee is None or price is None or len(seconds) < 3:
            continue
        group = groups.setdefault(rate_id, _RateGroup([], fee))
        not_whole = [f"{what} {value!r}" for what, (d, value) in seconds.items() if d != int(d)]
        if not_whole:
            group.not_seconds = group.not_seconds or f"{where}: {rate_id} {', '.join(not_whole)} not in whole seconds"
            continue
        unit, incr, start = (int(seconds[k][0]) for k in ("RateUnit", "RateIncrement", "GroupIntervalStart"))
        if any(s.start == start for _, s in group.slots):
            problems.add(where, f"{rate_id}: a second slot from {start} s")
            continue
        group.slots.append((n, Slot(start, price, unit, incr)))
    for rate_id, group in groups.items():
        if group.not_seconds is None and group.slots and min(s.start for _, s in group.slots) != 0:
            problems.add(f"Rates.csv line {group.slots[0][0]}", f"{rate_id}: no slot starts at 0s")

    dest_rates: dict[str, list[_DestRate]] = {}
    for n, (dr_id, dest_id, rates_tag, method, decimals, max_cost, strategy, *_) in rows["DestinationRates.csv"]:
        where = f"DestinationRates.csv line {n}"
        before = len(problems.items)
        if dest_id != ANY and dest_id not in destinations:
            problems.add(where, f"{dr_id}: destination {dest_id} is not in Destinations.csv")
        if rates_tag not in groups:
            problems.add(where, f"{dr_id}: rate {rates_tag} is not in Rates.csv")
        if method not in ROUNDING:
            problems.add(where, f"{dr_id}: RoundingMethod {method!r} is not one of {', '.join(ROUNDING)}")
        if not decimals.isdigit() or int(decimals) > 12:
            problems.add(where, f"{dr_id}: RoundingDecimals {decimals!r} is not 0 to 12")
        cap = money(max_cost, "MaxCost", where, problems, blank=Decimal(0))
        if strategy and strategy not in MAX_COST_STRATEGIES:
            problems.add(where, f"{dr_id}: MaxCostStrategy {strategy!r} is not one of {', '.join(MAX_COST_STRATEGIES)}")
        if len(problems.items) > before:
            continue
        dest_rates.setdefault(dr_id, []).append(
            _DestRate(n, dest_id, rates_tag, ROUNDING[method], int(decimals), cap or None, strategy or None)
        )

    plans: dict[str, list[tuple[int, list[str]]]] = {}
    for n, values in rows["RatingPlans.csv"]:
        plans.setdefault(values[0], []).append((n, values))
    if only is not None and only not in plans:
        problems.add(folder.name, f"no rating plan {only} in RatingPlans.csv (it has {', '.join(plans) or 'none'})")
    problems.check()

    result = Imported([])
    for plan_id, bindings in plans.items():
        if only is not None and plan_id != only:
            continue
        version, periods, why_not = _plan(plan_id, bindings, destinations, groups, dest_rates, timings, problems)
        if version is None:
            if only is not None:
                problems.add(folder.name, f"{plan_id}: {why_not}")
            else:
                result.notes.append(f"{plan_id}: skipped: {why_not}")
            continue
        deck = Deck(
            name=plan_id,
            currency=currency,
            kind=kind,
            rounding_method=version[0].rounding_method or "up",
            rounding_decimals=version[0].rounding_decimals if version[0].rounding_decimals is not None else 4,
            rounding_scope="increment",  # CGRateS's intermediate rounding (the rater's setting)
        )
        result.versions.append(DeckVersion(deck, effective_from, rates=tuple(version), periods=periods))
        result.notes += why_not.split("\n") if why_not else []
    problems.check()
    return result


def _plan(
    plan_id, bindings, destinations, groups, dest_rates, timings, problems: Problems
) -> tuple[list[Rate] | None, tuple[Period, ...], str]:
    """A plan's rates (or None and why not), its periods, and notes on what was left out."""
    notes: list[str] = []
    candidates: dict[str, list[cgrates_timings.Candidate]] = {}
    for n, (_, dr_id, timing_tag, weight_text, *_) in bindings:
        where = f"RatingPlans.csv line {n}"
        if dr_id not in dest_rates:
            problems.add(where, f"{plan_id}: destination rate {dr_id} is not in DestinationRates.csv")
            continue
        timing = cgrates_timings.ANY_TIMING if timing_tag == ANY else timings.get(timing_tag)
        if timing is None:
            problems.add(where, f"{plan_id}: timing {timing_tag} is not in {cgrates_timings.FILE}")
            continue
        if isinstance(timing, str):
            notes.append(f"{where}: {plan_id}: {dr_id} left out: {timing}")
            continue
        weight = money(weight_text, "Weight", where, problems, blank=Decimal(0))
        if weight is None:
            continue
        for dr in dest_rates[dr_id]:
            group = groups[dr.rates_tag]
            if group.not_seconds:
                return None, (), group.not_seconds
            slots = tuple(s for _, s in sorted(group.slots, key=lambda ls: ls[1].start))
            prefixes = [""] if dr.destination == ANY else destinations[dr.destination]
            for prefix in prefixes:
                rate = Rate(
                    prefix=prefix,
                    destination=dr.destination,
                    slots=slots,
                    connect_fee=group.connect_fee,
                    rounding_method=dr.rounding_method,
                    rounding_decimals=dr.rounding_decimals,
                    max_cost=dr.max_cost,
                    max_cost_strategy=dr.max_cost_strategy,
                )
                candidates.setdefault(prefix, []).append(cgrates_timings.Candidate(weight, timing, n, rate))
    if not candidates:
        return None, (), "; ".join(notes) or "no rates"
    periods, rates = cgrates_timings.choose(plan_id, candidates, problems)
    return rates, periods, "\n".join(notes)
