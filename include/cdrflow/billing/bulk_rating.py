"""The common shape of rate, compiled once and rated in integer arithmetic: what a billrun spends
most of its time on.

:func:`rating.rate_call` is the reference: exact rationals (``Fraction``), a :class:`Charge`, then
its breakdown as a dict and JSON. That costs 100-200 us a call, and a day of calls over a big deck
repeats few (rate, billing seconds) pairs, so a cache alone does not save it. Most rates have the
shape whose cost is a closed form of the billed seconds: rounded once per call (deck
``rounding_scope="call"``), no rates by period for their prefix, no ``*free`` max cost.
:func:`compile_rate` turns such a rate into a :class:`CompiledRate` whose :meth:`~CompiledRate.row`
gives the rating columns of a charge as COPY text directly:

- every amount of the rate (connect fee, minimum charge, each slot's price per second) is an
  integer over one common denominator ``D`` (the lcm of their denominators), so the exact total
  is ``fee + sum(billed_i * coef_i)`` in Python ints (no overflow, no float) and is rounded with
  the same integer steps as :func:`rating.round_money`;
- the breakdown JSON is a template filled with the call's numbers: the same keys, order and text
  as ``json.dumps(charge_dict(rate_call(...)))``, escaped for COPY once per rate.

Anything else (CGRateS per-increment rounding, max cost, prefixes priced by period, negative
seconds) returns None here and is rated by :func:`rating.rate_call`. ``tests/test_rating.py``
drives both with the same generated rates and calls and requires the same text.
"""

from __future__ import annotations

import json
import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction

from cdrflow.billing.model import DeckVersion, Rate
from cdrflow.billing.rating import _DECIMAL_MODES, _SHOWN_PLACES, pieces, round_money, rounding_of

_SHOWN_SCALE = 10**_SHOWN_PLACES


def _escape(s: str) -> str:
    """COPY text escaping (as charging.copy_text), for the fixed parts of a row."""
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, Decimal):
        return format(value, "f")
    return _escape(str(value))


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _round_int(num: int, den: int, mode: str) -> int:
    """``round_money``'s integer step: num/den (den > 0) to an integer, rounded by ``mode``."""
    q, r = divmod(num, den)
    if r:
        if mode == ROUND_CEILING:
            q += 1
        elif mode != ROUND_FLOOR:
            twice = 2 * r
            if twice > den or (twice == den and (mode == ROUND_HALF_UP or q % 2)):
                q += 1
    return q


def _plain(q: int, places: int) -> str:
    """``format(Decimal(q).scaleb(-places), "f")`` in string operations (a third of its time):
    ``q`` units of 10**-places, with exactly ``places`` decimals."""
    sign = "-" if q < 0 else ""
    digits = str(-q if q < 0 else q)
    if not places:
        return sign + digits
    digits = digits.rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def _shown(q: int, places: int) -> str:
    """``format(Decimal(q).scaleb(-places).normalize(), "f")``: as :func:`_plain`, without the
    trailing zeros of its decimals (and without the point when none is left)."""
    text = _plain(q, places)
    return text.rstrip("0").rstrip(".") if "." in text else text


class _Pricing:
    """What a rate's calls cost, apart from which prefix it is: its slots, fees, minimums and
    rounding (and the deck's alignment and minimum policy). Many rates of a deck share one (a deck
    of 50,000 prefixes has a few thousand prices): it is computed once for them all (``Fraction``
    arithmetic and JSON, 50-90 us a rate, was most of compiling a rate), and so is the text of a
    call of each length, :meth:`tail`. Keyed by :func:`_pricing_key`, the amounts as their text:
    ``0.10`` and ``0.1`` are equal Decimals but not the same breakdown."""

    def __init__(self, version: DeckVersion, rate: Rate, method: str, decimals: int) -> None:
        deck = version.deck
        self.slots = rate.slots
        self.alignment = deck.alignment
        self.policy = deck.minimum_policy
        self.minimum_seconds = rate.minimum_seconds
        self.decimals = decimals
        self.scale = 10**decimals
        self.mode = _DECIMAL_MODES[method]
        per_second = [Fraction(s.price) / s.unit for s in rate.slots]
        fee, floor = Fraction(rate.connect_fee), Fraction(rate.minimum_charge)
        den = math.lcm(fee.denominator, floor.denominator, *(p.denominator for p in per_second))
        self.den = den
        self.fee = int(fee * den)
        self.floor = int(floor * den)
        # per slot, in the rate's order: (coef, the slot's fixed JSON)
        self.coefs = [
            (
                int(p * den),
                _escape(f'"price":{_dumps(format(s.price, "f"))},"unit":{s.unit},"increment":{s.increment},"amount":'),
            )
            for s, p in zip(rate.slots, per_second, strict=True)
        ]
        first = rate.slots[0]
        first_block = max(rate.minimum_seconds, first.increment)
        base = round_money(fee + Fraction(first_block) * Fraction(first.price) / first.unit, decimals, method)
        self.fee_text = format(rate.connect_fee, "f")
        self.currency = _field(deck.currency)
        after = {
            "rate": format(first.price, "f"),
            "rate_unit": first.unit,
            "rate_increment": first.increment,
            "rate_minimum": rate.minimum_seconds,
            "base_cost": format(base, "f"),
        }
        self.json_mid = _escape("," + _dumps(after)[1:-1])
        # pieces() returns the slots it is given, in order: their coefs by identity
        self.coef_of = {id(s): c for s, c in zip(self.slots, self.coefs, strict=True)}

    def tail(self, seconds: int) -> tuple[str, str]:
        """The text of a call of ``seconds`` (>= 0) around the rate's own JSON head: the columns
        after the rate's (billing and billed seconds, cost, currency, up to the breakdown), and the
        breakdown after its head (then the unrated reason, none)."""
        free = self.policy == "free" and 0 < seconds < self.minimum_seconds
        billed_for = seconds
        minimum_applied = False
        if self.policy == "bill" and 0 < seconds < self.minimum_seconds:
            billed_for, minimum_applied = self.minimum_seconds, True
        parts = [] if free or billed_for == 0 else pieces(self.slots, billed_for, self.alignment)
        total = 0
        billed_sum = 0
        shown: list[str] = []
        if parts:
            total = self.fee
            den = self.den
            coef_of = self.coef_of
            for slot, start, billed in parts:
                coef, fixed = coef_of[id(slot)]
                amount = billed * coef
                total += amount
                billed_sum += billed
                q = _round_int(amount * _SHOWN_SCALE, den, ROUND_HALF_EVEN)
                text = _shown(q, _SHOWN_PLACES)
                shown.append(f'{{"start":{start},"seconds":{billed},{fixed}"{text}"}}')
            if self.floor > total:
                total, minimum_applied = self.floor, True
        cost = _plain(_round_int(total * self.scale, self.den, self.mode), self.decimals)
        fee = self.fee_text if parts else "0"
        applied = "true" if minimum_applied and parts else "false"
        columns = f"\t{seconds}\t{billed_sum}\t{cost}\t{self.currency}\t"
        breakdown = (
            f',"billing_seconds":{seconds},"billed_seconds":{billed_sum},"connect_fee":"{fee}"'
            f'{self.json_mid},"slots":[{",".join(shown)}],"minimum_applied":{applied},'
            f'"free_under_minimum":{"true" if free else "false"},"max_cost_applied":false,"cost":"{cost}"}}\t\\N'
        )
        return columns, breakdown


# pricings kept (shared by the rates of every deck version this process compiles; 1-2 KB each):
# past it they are computed again, so memory stays bounded
_PRICINGS_LIMIT = 10_000
_PRICINGS: dict[tuple, _Pricing] = {}


def _pricing_key(version: DeckVersion, rate: Rate, method: str, decimals: int) -> tuple:
    deck = version.deck
    return (
        tuple((s.start, format(s.price, "f"), s.unit, s.increment) for s in rate.slots),
        format(rate.connect_fee, "f"),
        format(rate.minimum_charge, "f"),
        rate.minimum_seconds,
        method,
        decimals,
        deck.alignment,
        deck.minimum_policy,
        deck.currency,
    )


def _pricing(version: DeckVersion, rate: Rate, method: str, decimals: int) -> _Pricing:
    key = _pricing_key(version, rate, method, decimals)
    found = _PRICINGS.get(key)
    if found is None:
        if len(_PRICINGS) >= _PRICINGS_LIMIT:
            _PRICINGS.clear()
        found = _PRICINGS[key] = _Pricing(version, rate, method, decimals)
    return found


class CompiledRate:
    """One rate of one deck version, ready to rate many calls (see the module's doc): its own
    text (deck, version, prefix, destination, call type; the breakdown's head) around its
    :class:`_Pricing`'s."""

    def __init__(self, version: DeckVersion, version_id: int, rate: Rate) -> None:
        deck = version.deck
        method, decimals = rounding_of(version, rate)
        self.rate = rate
        self.pricing = _pricing(version, rate, method, decimals)
        self.head = "\t".join(
            map(_field, (deck.name, version_id, rate.prefix, rate.destination, rate.call_type, rate.call_sub_type))
        )
        before = {
            "deck": deck.name,
            "currency": deck.currency,
            "effective_from": version.effective_from.isoformat(),
            "prefix": rate.prefix,
            "destination": rate.destination,
            "call_type": rate.call_type,
            "call_sub_type": rate.call_sub_type,
        }
        self.json_head = _escape(_dumps(before)[:-1])

    def row(self, seconds: int) -> str:
        """The rating columns of a call of ``seconds`` (>= 0) billing seconds, as COPY text: the
        same text as ``charging.Rater`` writes for ``rate_call``'s charge."""
        columns, breakdown = self.pricing.tail(seconds)
        return self.head + columns + self.json_head + breakdown


def compile_rate(version: DeckVersion, version_id: int, rate: Rate) -> CompiledRate | None:
    """The rate compiled for :meth:`CompiledRate.row`, or None when it is not of the common shape
    (it is then rated by ``rating.rate_call``). The caller checks the prefix has no rates by period."""
    if version.deck.rounding_scope != "call":
        return None
    if rate.max_cost is not None and rate.max_cost > 0 and (rate.max_cost_strategy or "").lstrip("*") == "free":
        return None
    return CompiledRate(version, version_id, rate)
