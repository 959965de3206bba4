"""The rating engine: one call's billed seconds and cost from a rate, as pure functions.

Every rule and its worked examples are in the README's "Rating" section. In short:

1. **Minimum.** A call shorter than the rate's ``minimum_seconds`` is rated as if it lasted the
   minimum (deck ``minimum_policy="bill"``) or costs nothing (``"free"``).
2. **Billed seconds.** The seconds are cut at each slot's ``start`` (CGRateS
   ``GroupIntervalStart``); each piece is rounded up to the slot's increment, counted from where
   the piece starts (deck ``alignment="slot"``: CGRateS, Kazoo) or from second 0 of the call
   (``"zero"``: A2Billing). A piece rounded past the next slot's start covers those seconds: the
   next piece starts where it ends (as CGRateS's ``roundTimeSpansToIncrement`` does).
3. **Cost.** Connect fee plus, per piece, billed seconds x price / unit; at least the rate's
   ``minimum_charge``; at most ``max_cost`` when its strategy is ``*free`` (``*disconnect`` is a
   call-control setting: a finished call is charged in full, as CGRateS's ``GetCost`` does).
4. **Rounding.** Deck ``rounding_scope="call"``: the sum is exact (rational arithmetic, no
   float) and rounded once with the rate's or the deck's method and decimals. ``"increment"``:
   CGRateS's arithmetic to the last decimal (``engine/timespans.go``, ``engine/calldesc.go``):
   each piece's cost rounded half up to ``increment_decimals`` (CGRateS
   ``general.rounding_decimals``, 5 by default), split into its increments each rounded the same
   way, the connect fee added to the first piece and rounded again, ``*free`` max cost applied
   on the running sums as CGRateS does, then the call rounded with the rate's method and
   decimals (no final rounding at 0 decimals, as in CGRateS's ``GetLongestRounding``).

5. **Periods** (time-of-day and weekday profiles, README "Rating"). A prefix with rates by
   period is rated from the moment the call starts: the rate of the period it starts in decides
   everything but the price of later seconds (minimum, free policy, increments and so the billed
   seconds, connect fee, minimum charge, max cost, rounding). Its billed seconds are laid on the
   clock and each piece is cut where the period changes (:meth:`periods.Clock.timeline`); a part
   in another period is priced by that period's rate (its slot in force at the piece's start).
   Rounding stays once per call. A call inside one period costs what its rate alone says.

Unanswered calls (0 billing seconds) cost 0. A call that cannot be rated is an :class:`Unrated`
with its reason, never an exception.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from cdrflow.billing.model import DeckVersion, Rate, Slot
from cdrflow.billing.periods import US, Clock
from cdrflow.billing.prefixes import PrefixIndex, digits_of

NO_MATCH = "no prefix match"
NOT_RATABLE = "number not ratable"
NO_SECONDS = "billing seconds missing"
NO_RATE_NOW = "no rate at that time"  # the prefix has rates by period, none for this moment

# cdrflow's names and CGRateS's (*up, *down, *middle)
_METHODS = {
    "up": "up",
    "*up": "up",
    "down": "down",
    "*down": "down",
    "half_up": "half_up",
    "middle": "half_up",
    "*middle": "half_up",
    "half_even": "half_even",
}
_DECIMAL_MODES = {"up": ROUND_CEILING, "down": ROUND_FLOOR, "half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}
# breakdown amounts that are not rounded (a piece at 0.05 per 60 s) are shown to this many places
_SHOWN_PLACES = 10


@dataclass(frozen=True)
class Unrated:
    reason: str  # NO_MATCH, NOT_RATABLE, NO_SECONDS (billing adds: no deck, deck not in force)


@dataclass(frozen=True)
class SlotCharge:
    """One piece of a call: the seconds billed at one slot's price, and what they cost."""

    start: int  # call second the piece starts at
    seconds: int  # billed seconds of the piece (rounded up to the slot's increment)
    price: Decimal
    unit: int
    increment: int
    amount: Decimal  # seconds x price / unit (rounding_scope "increment": as CGRateS rounds it)
    period: str | None = None  # prefixes rated by period: the period of the rate that priced it


@dataclass(frozen=True)
class Charge:
    """A rated call with its breakdown (what seed 003's billing properties show)."""

    deck: str
    currency: str
    effective_from: date  # of the deck version
    prefix: str
    destination: str
    call_type: str | None
    call_sub_type: str | None
    billing_seconds: int  # as the CDR says (billsec)
    billed_seconds: int  # after the minimum and the increments
    connect_fee: Decimal  # seed 003 `surcharge`
    rate: Decimal  # price of the first slot (seed 003 `rate`)
    rate_unit: int
    rate_increment: int  # first increment (seed 003 `rate_increment`)
    rate_minimum: int  # minimum seconds (seed 003 `rate_minimum`)
    base_cost: Decimal  # connect fee + the first block at the first price (seed 003 `base_cost`)
    slots: tuple[SlotCharge, ...]
    minimum_applied: bool  # the minimum seconds or minimum charge raised the cost
    free_under_minimum: bool  # minimum_policy "free" and the call was shorter
    max_cost_applied: bool
    cost: Decimal  # rounded, in the deck's currency

    @property
    def surcharge(self) -> Decimal:
        return self.connect_fee


def rounding_of(version: DeckVersion, rate: Rate) -> tuple[str, int]:
    """(method, decimals) of a rate: its own, else its deck's; methods as cdrflow names them."""
    method = rate.rounding_method if rate.rounding_method is not None else version.deck.rounding_method
    decimals = rate.rounding_decimals if rate.rounding_decimals is not None else version.deck.rounding_decimals
    try:
        return _METHODS[method], decimals
    except KeyError:
        raise ValueError(f"unknown rounding method {method!r}") from None


def round_money(value: Fraction | Decimal, decimals: int, method: str) -> Decimal:
    """An exact value rounded to ``decimals`` places: up (ceiling), down (floor), half_up, half_even."""
    mode = _DECIMAL_MODES[_METHODS[method]]
    if isinstance(value, Decimal):
        return value.quantize(Decimal(1).scaleb(-decimals), rounding=mode)
    scale = 10**decimals
    num, den = value.numerator * scale, value.denominator
    q, r = divmod(num, den)  # floor division: q <= num/den < q + 1
    if r:
        if mode == ROUND_CEILING:
            q += 1
        elif mode != ROUND_FLOOR:
            twice = 2 * r
            if twice > den or (twice == den and (mode == ROUND_HALF_UP or q % 2)):
                q += 1
    return Decimal(q).scaleb(-decimals)


def _half_up(value: Fraction, decimals: int) -> Fraction:
    scale = 10**decimals
    return Fraction(math.floor(value * scale + Fraction(1, 2)), scale)


def pieces(slots: tuple[Slot, ...], seconds: int, alignment: str = "slot") -> list[tuple[Slot, int, int]]:
    """(slot, start, billed seconds) of each piece of a call of ``seconds`` (> 0) seconds."""
    out: list[tuple[Slot, int, int]] = []
    position = 0  # billed up to here
    for k, slot in enumerate(slots):
        if slot.start >= seconds:
            break
        end = seconds if k + 1 == len(slots) else min(slots[k + 1].start, seconds)
        start = max(slot.start, position)
        if start >= end:
            continue  # the previous piece's increment covered this slot
        step = slot.increment
        if alignment == "zero":
            billed_end = -(-end // step) * step
        else:
            billed_end = start + -(-(end - start) // step) * step
        out.append((slot, start, billed_end - start))
        position = billed_end
    return out


Piece = tuple[Slot, int, int]  # (slot, call second it starts at, billed seconds)
Timeline = Sequence[tuple[int, str]]  # (call second, period) where a call's period changes


def rate_call(
    version: DeckVersion,
    rate: Rate,
    billing_seconds: int | None,
    *,
    by_period: Mapping[str, Rate] | None = None,
    timeline: Timeline | None = None,
) -> Charge | Unrated:
    """The charge of one call of ``billing_seconds`` on ``rate`` (a rate of ``version``).

    A prefix with rates by period: ``rate`` is the one of the period the call starts in,
    ``by_period`` all of the prefix's, ``timeline`` where the call changes period (None: it does
    not; see :func:`starting_rate`)."""
    if billing_seconds is None or billing_seconds < 0:
        return Unrated(NO_SECONDS)
    deck = version.deck
    method, decimals = rounding_of(version, rate)
    first = rate.slots[0]
    free = deck.minimum_policy == "free" and 0 < billing_seconds < rate.minimum_seconds
    seconds = billing_seconds
    minimum_applied = False
    if deck.minimum_policy == "bill" and 0 < seconds < rate.minimum_seconds:
        seconds, minimum_applied = rate.minimum_seconds, True
    parts = [] if free or seconds == 0 else pieces(rate.slots, seconds, deck.alignment)
    labels: list[str] | None = None
    if by_period is not None:
        if timeline is None or len(timeline) < 2:
            labels = [rate.period] * len(parts)
        else:
            split = _split(parts, rate, by_period, timeline)
            if split is None:
                return Unrated(NO_RATE_NOW)
            parts, labels = split

    slot_charges: list[SlotCharge] = []
    max_cost_applied = False
    capped = rate.max_cost is not None and rate.max_cost > 0 and (rate.max_cost_strategy or "").lstrip("*") == "free"
    if not parts:
        total = Fraction(0)
    elif deck.rounding_scope == "increment":
        total, max_cost_applied = _cgrates_cost(rate, parts, deck.increment_decimals, slot_charges, capped, labels)
    else:
        exact = Fraction(rate.connect_fee)
        for i, (slot, start, billed) in enumerate(parts):
            amount = Fraction(billed) * Fraction(slot.price) / slot.unit
            exact += amount
            shown = round_money(amount, _SHOWN_PLACES, "half_even").normalize()
            period = labels[i] if labels is not None else None
            slot_charges.append(SlotCharge(start, billed, slot.price, slot.unit, slot.increment, shown, period))
        total = exact
    if parts:
        if rate.minimum_charge > total:
            total, minimum_applied = Fraction(rate.minimum_charge), True
        if capped and rate.max_cost is not None and total > rate.max_cost:
            total, max_cost_applied = Fraction(rate.max_cost), True
    if deck.rounding_scope == "increment" and decimals == 0:
        cost = _exact(total)  # CGRateS rounds a call only when its rate has decimals
    else:
        cost = round_money(total, decimals, method)
    first_block = max(rate.minimum_seconds, first.increment)
    base = round_money(
        Fraction(rate.connect_fee) + Fraction(first_block) * Fraction(first.price) / first.unit, decimals, method
    )
    return Charge(
        deck=deck.name,
        currency=deck.currency,
        effective_from=version.effective_from,
        prefix=rate.prefix,
        destination=rate.destination,
        call_type=rate.call_type,
        call_sub_type=rate.call_sub_type,
        billing_seconds=billing_seconds,
        billed_seconds=sum(billed for _, _, billed in parts),
        connect_fee=rate.connect_fee if parts else Decimal(0),
        rate=first.price,
        rate_unit=first.unit,
        rate_increment=first.increment,
        rate_minimum=rate.minimum_seconds,
        base_cost=base,
        slots=tuple(slot_charges),
        minimum_applied=minimum_applied and bool(parts),
        free_under_minimum=free,
        max_cost_applied=max_cost_applied,
        cost=cost,
    )


def _split(
    parts: list[Piece], rate: Rate, by_period: Mapping[str, Rate], timeline: Timeline
) -> tuple[list[Piece], list[str]] | None:
    """The pieces of a call cut where its period changes. A part is priced by the rate of its
    period (the prefix's any-time rate when the period has none of its own): that rate's slot in
    force at the piece's start, billed in the piece's own increment. Consecutive parts of a piece
    on one rate stay one piece. None: a part's period has no rate at all."""
    cuts = [second for second, _ in timeline]
    rates = [by_period.get(name) or by_period.get("") for _, name in timeline]
    out: list[Piece] = []
    labels: list[str] = []
    for slot, start, billed in parts:
        end, at, k = start + billed, start, bisect_right(cuts, start) - 1
        previous: Rate | None = None
        while at < end:
            upto = cuts[k + 1] if k + 1 < len(cuts) and cuts[k + 1] < end else end
            priced_by = rates[k]
            if priced_by is None:
                return None
            if priced_by is previous:
                kept, kept_start, kept_billed = out[-1]
                out[-1] = (kept, kept_start, kept_billed + upto - at)
            else:
                if priced_by is rate:
                    priced = slot
                else:
                    tier = [s for s in priced_by.slots if s.start <= start][-1]
                    priced = Slot(slot.start, tier.price, tier.unit, slot.increment)
                out.append((priced, at, upto - at))
                labels.append(priced_by.period)
            previous, at, k = priced_by, upto, k + 1
    return out, labels


def starting_rate(
    by_period: Mapping[str, Rate], clock: Clock, at: datetime, billing_seconds: int
) -> tuple[Rate | None, tuple[tuple[int, str], ...] | None]:
    """The rate of the period a call starts in (None: that period has none, nor has the prefix an
    any-time rate) and the call's timeline, None when the call cannot leave that period: its billed
    seconds (at most the seconds or the minimum, plus an increment) end before the next change."""
    period, room = clock.locate(at)
    rate = by_period.get(period) or by_period.get("")
    if rate is None:
        if billing_seconds == 0:  # unanswered: costs nothing, whenever it was
            return next(iter(by_period.values())), None
        return None, None
    reach = max(billing_seconds, rate.minimum_seconds) + max(s.increment for s in rate.slots)
    if reach * US <= room:
        return rate, None
    return rate, clock.timeline(at, reach)


def _cgrates_cost(
    rate: Rate, parts: list[Piece], places: int, out: list[SlotCharge], capped: bool, labels: list[str] | None
) -> tuple[Fraction, bool]:
    """CGRateS ``CallDescriptor.GetCost`` on the pieces (its timespans), before the call's rounding.

    ``TimeSpan.createIncrementsSlice``: a timespan's cost (``RateInterval.GetCost``) rounded half
    up to the global decimals, divided by its number of increments and rounded again, times that
    number. ``GetCost``: the connect fee joins the first timespan's increments (their sum rounded
    again); ``MaxCostSoFar`` grows by the running cost after each timespan and, for ``*free``,
    once it reaches ``MaxCost`` the cost is ``MaxCost``.
    """
    cost = Fraction(0)
    so_far = Fraction(0)
    applied = False
    max_cost = Fraction(rate.max_cost) if rate.max_cost is not None else Fraction(0)
    for i, (slot, start, billed) in enumerate(parts):
        whole = _half_up(Fraction(billed) * Fraction(slot.price) / slot.unit, places)
        count = max(1, -(-billed // slot.increment))
        each = _half_up(whole / count, places)
        span = each * count
        period = labels[i] if labels is not None else None
        out.append(SlotCharge(start, billed, slot.price, slot.unit, slot.increment, _exact(span), period))
        if i == 0:
            span = _half_up(Fraction(rate.connect_fee) + span, places)
        cost += span
        so_far += cost
        if capped and so_far >= max_cost:
            cost, so_far, applied = max_cost, max_cost, True
    return cost, applied


def rate_number(
    version: DeckVersion,
    index: PrefixIndex,
    number: str | None,
    billing_seconds: int | None,
    at: datetime | None = None,
    clock: Clock | None = None,
) -> Charge | Unrated:
    """Match a number in a version's index, then rate the call (starting ``at``: required when the
    matched prefix has rates by period; ``clock``: the version's, when the caller keeps one)."""
    digits = digits_of(number)
    if digits is None:
        return Unrated(NOT_RATABLE)
    position = index.position(digits)
    if position is None:
        return Unrated(NO_MATCH)
    by_period = index.by_period.get(position)
    if by_period is None:
        return rate_call(version, index.rates[position], billing_seconds)
    if billing_seconds is None or billing_seconds < 0:
        return Unrated(NO_SECONDS)
    if at is None:
        raise ValueError(f"prefix {index.rates[position].prefix} is priced by period: the call's start is needed")
    rate, timeline = starting_rate(
        by_period, clock or Clock(version.periods, version.deck.timezone), at, billing_seconds
    )
    if rate is None:
        return Unrated(NO_RATE_NOW)
    return rate_call(version, rate, billing_seconds, by_period=by_period, timeline=timeline)


def _exact(value: Fraction) -> Decimal:
    """A fraction whose denominator divides a power of ten, as the Decimal it is."""
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(value.numerator) / Decimal(value.denominator)).normalize() + Decimal(0)


def _text(value: Decimal) -> str:
    return format(value, "f")


def charge_dict(charge: Charge) -> dict:
    """A charge as JSON-ready values (money as decimal strings)."""
    return {
        "deck": charge.deck,
        "currency": charge.currency,
        "effective_from": charge.effective_from.isoformat(),
        "prefix": charge.prefix,
        "destination": charge.destination,
        "call_type": charge.call_type,
        "call_sub_type": charge.call_sub_type,
        "billing_seconds": charge.billing_seconds,
        "billed_seconds": charge.billed_seconds,
        "connect_fee": _text(charge.connect_fee),
        "rate": _text(charge.rate),
        "rate_unit": charge.rate_unit,
        "rate_increment": charge.rate_increment,
        "rate_minimum": charge.rate_minimum,
        "base_cost": _text(charge.base_cost),
        "slots": [
            {
                "start": s.start,
                "seconds": s.seconds,
                "price": _text(s.price),
                "unit": s.unit,
                "increment": s.increment,
                "amount": _text(s.amount),
                **({"period": s.period} if s.period is not None else {}),
            }
            for s in charge.slots
        ],
        "minimum_applied": charge.minimum_applied,
        "free_under_minimum": charge.free_under_minimum,
        "max_cost_applied": charge.max_cost_applied,
        "cost": _text(charge.cost),
    }


def quote(version: DeckVersion, number: str, seconds: int, at: datetime | None = None) -> dict:
    """What ``cdrflow rate quote`` prints: the charge as a dict, or ``{"unrated": reason}``. With
    ``at`` (the call's start) and a deck with periods: ``at`` in the deck's time zone, and for each
    piece the local time it starts (``local``), so a call split at a boundary shows where."""
    clock = Clock(version.periods, version.deck.timezone) if version.periods else None
    result = rate_number(version, PrefixIndex.of(version), number, seconds, at, clock)
    if isinstance(result, Unrated):
        return {"deck": version.deck.name, "number": number, "unrated": result.reason}
    out = {"number": number, **charge_dict(result)}
    if at is not None and clock is not None:
        utc = (at if at.tzinfo is not None else at.replace(tzinfo=clock.zone)).astimezone(UTC)
        out["at"] = utc.astimezone(clock.zone).isoformat()
        for s in out["slots"]:  # elapsed time from the start, shown on the deck's wall clock
            s["local"] = (utc + timedelta(seconds=s["start"])).astimezone(clock.zone).strftime("%a %H:%M:%S")
    return out
