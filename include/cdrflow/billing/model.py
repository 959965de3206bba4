"""What a rate deck is, in memory: the shape the importers produce and the rater reads.

A deck (a price list: what cdrflow sells to an account, or buys from a carrier) has versions,
each in force from a date; a version holds rates, one per prefix. A rate's price is a list of
slots, as CGRateS has them (``Rates.csv``: ``GroupIntervalStart``, ``Rate``, ``RateUnit``,
``RateIncrement``): from second ``start`` of the call on, ``price`` per ``unit`` seconds, billed
in steps of ``increment`` seconds. The usual forms are slots too:

- 60/60 at 0.10 a minute: ``(Slot(0, 0.10, 60, 60),)``
- 30/6 at 0.10 a minute (first 30 s, then 6 s steps): ``(Slot(0, 0.10, 60, 30), Slot(30, 0.10, 60, 6))``
- tiers (CGRateS ``RT_10CNT``: 0.10 for the first minute in 60 s steps, 0.05 after in 1 s steps):
  ``(Slot(0, 0.10, 60, 60), Slot(60, 0.05, 60, 1))``

Money and prices are :class:`~decimal.Decimal`, never float. How the slots turn seconds into a
cost (increment alignment, minimums, rounding) is the rater's, set per deck (and per rate where
CGRateS sets it per destination rate).

Time-of-day and weekday profiles: a version may define :class:`Period` s (``peak``: Monday to
Friday 08:00-19:00 in the deck's time zone), and a prefix may then have one rate per period
(``Rate.period``) besides its rate for any other time (``period=""``). A version without
periods, and a prefix with only a ``""`` rate, rate exactly as before profiles existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

DECK_KINDS = ("sell", "buy")
# CGRateS *up, *down, *middle (half up), plus banker's rounding; see the rater for each
ROUNDING_METHODS = ("up", "down", "half_up", "half_even")
# Seed 004's call types (its billing feed), see ../shared/seeds
CALL_TYPES = ("I", "M", "MG", "M3", "S", "L", "8", "9")
# Where a slot's increments are counted from (README "Rating"): "slot", from where the slot
# starts (CGRateS, Kazoo: 30/6 bills 30 then steps of 6); "zero", from second 0 of the call
# (A2Billing: a 45 s first block then 30 s steps bills a 50 s call 60 s, not 75 s)
ALIGNMENTS = ("slot", "zero")
# A call shorter than a rate's minimum_seconds: "bill" it as the minimum, or make it "free"
MINIMUM_POLICIES = ("bill", "free")
# "call": exact arithmetic, one rounding per call; "increment": CGRateS's arithmetic (each rate
# slot's cost and each increment rounded half up to increment_decimals, then the call rounded)
ROUNDING_SCOPES = ("call", "increment")


@dataclass(frozen=True)
class Slot:
    start: int  # call second from which this slot applies (0 for the first)
    price: Decimal  # per `unit` seconds
    unit: int  # seconds the price is for (60: a price per minute)
    increment: int  # billing step in seconds (> 0)


# ISO weekdays, as periods count them (Python's isoweekday: 1 Monday ... 7 Sunday)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_SECONDS = 86400


@dataclass(frozen=True)
class Window:
    """Part of a period: on these weekdays, from ``start`` to ``end`` (seconds of the local day)."""

    weekdays: frozenset[int]  # 1 Monday ... 7 Sunday
    start: int  # 0 <= start < end
    end: int  # <= 86400 (24:00)


@dataclass(frozen=True)
class Period:
    """A named time of the week (``peak``, ``weekend``) in the deck's time zone. The periods of a
    version never overlap; a moment in none of them is priced by the prefixes' ``""`` rates."""

    name: str
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class Rate:
    prefix: str  # digits; the longest prefix of the number that matches wins
    destination: str  # a name for people: "United Kingdom - Mobile"
    slots: tuple[Slot, ...]  # ordered by start; the first starts at 0
    connect_fee: Decimal = Decimal(0)
    call_type: str | None = None  # seed 004: I, M, MG, M3, S, L, 8, 9
    call_sub_type: str | None = None
    minimum_seconds: int = 0  # billed at least this long (when the call is billed at all)
    minimum_charge: Decimal = Decimal(0)  # cost at least this (after the connect fee)
    rounding_method: str | None = None  # None: the deck's
    rounding_decimals: int | None = None  # None: the deck's
    max_cost: Decimal | None = None  # CGRateS MaxCost (with max_cost_strategy)
    max_cost_strategy: str | None = None  # CGRateS *free or *disconnect
    period: str = ""  # the Period it prices; "": any time no rate of its own period prices


@dataclass(frozen=True)
class Deck:
    name: str
    currency: str = "USD"  # ISO 4217
    kind: str = "sell"  # DECK_KINDS
    rounding_method: str = "up"  # ROUNDING_METHODS, per call
    rounding_decimals: int = 4
    timezone: str = "UTC"  # of its periods, and of the date that picks the version in force
    alignment: str = "slot"  # ALIGNMENTS
    minimum_policy: str = "bill"  # MINIMUM_POLICIES
    rounding_scope: str = "call"  # ROUNDING_SCOPES; "increment" for decks from CGRateS
    increment_decimals: int = 5  # rounding_scope "increment": CGRateS general.rounding_decimals


@dataclass(frozen=True)
class DeckVersion:
    deck: Deck
    effective_from: date
    rates: tuple[Rate, ...] = field(default_factory=tuple)
    periods: tuple[Period, ...] = field(default_factory=tuple)  # none: one price at any time
