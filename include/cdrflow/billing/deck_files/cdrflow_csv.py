"""cdrflow's own rate deck CSV: one file, one deck version.

UTF-8, comma-separated, a header line naming the columns (any order); lines starting with ``#``
are comments::

    prefix,destination,call_type,call_sub_type,rate_per_minute,connect_fee,first_increment,next_increment,minimum_seconds,minimum_charge,tiers
    44,United Kingdom,I,,0.0100,0,60,60,0,0,
    447,United Kingdom - Mobile,M,,0.0800,0.0150,30,6,30,0,
    1002,Tutorial 1002,S,,0.10,0.20,60,60,0,0,60:0.05:1

=================  ========  ====================================================================
column             required  meaning
=================  ========  ====================================================================
prefix             yes       digits the called number starts with (E.164 without ``+``)
destination        yes       a name for people (may be empty)
call_type          yes       seed 004 call type (I, M, MG, M3, S, L, 8, 9) or empty
call_sub_type      yes       free text or empty
rate_per_minute    yes       price per 60 seconds, a decimal (never negative)
connect_fee        yes       charged once per billed call (empty: 0)
first_increment    yes       seconds billed at the start of the call (>= 1)
next_increment     yes       billing step after that (>= 1): 60/60, 30/6, 1/1
minimum_seconds    yes       a billed call is billed at least this long (empty: 0)
minimum_charge     yes       a billed call costs at least this (empty: 0)
tiers              no        later prices by call second: ``start:rate_per_minute:increment;...``
=================  ========  ====================================================================

The slots (see :mod:`cdrflow.billing.model`): ``rate_per_minute`` from second 0 in steps of
``first_increment``, then (when ``next_increment`` differs) from second ``first_increment`` in
steps of ``next_increment``; each tier adds a slot from its start second (a tier at
``first_increment`` replaces the next-increment slot). ``60:0.05:1`` with 0.10, 60/60 is
CGRateS's ``RT_10CNT``: 0.10 a minute for the first minute in 60 s steps, 0.05 after in 1 s
steps.
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

from cdrflow.billing.deck_files import Imported, Problems, money, prefix_problem, whole
from cdrflow.billing.model import CALL_TYPES, Deck, DeckVersion, Rate, Slot

COLUMNS = (
    "prefix",
    "destination",
    "call_type",
    "call_sub_type",
    "rate_per_minute",
    "connect_fee",
    "first_increment",
    "next_increment",
    "minimum_seconds",
    "minimum_charge",
)
OPTIONAL = ("tiers",)


def read(path: Path, deck: Deck, effective_from: date) -> Imported:
    """The deck version in ``path``, or :class:`DeckRefused` with every problem and its line."""
    name = path.name
    problems = Problems()
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        problems.add(name, f"cannot read: {exc.strerror or exc}")
        problems.check()
        raise
    rates: dict[str, Rate] = {}
    first_line: dict[str, int] = {}
    with handle:
        try:
            lines = [(n, line) for n, line in enumerate(handle, start=1) if line.strip() and not line.startswith("#")]
        except UnicodeDecodeError:
            problems.add(name, "not a cdrflow rate deck: not UTF-8 text")
            problems.check()
            raise
    if not lines:
        problems.add(name, "not a cdrflow rate deck: no header line")
        problems.check()
    header_no, header_line = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_line]))]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS + OPTIONAL]
    if missing or unknown:
        why = "; ".join(
            part
            for part in (
                f"missing column(s) {', '.join(missing)}" if missing else "",
                f"unknown column(s) {', '.join(unknown)}" if unknown else "",
            )
            if part
        )
        problems.add(f"{name} line {header_no}", f"not a cdrflow rate deck header: {why}")
        problems.check()
    for line_no, values in zip((n for n, _ in lines[1:]), csv.reader(line for _, line in lines[1:])):
        where = f"{name} line {line_no}"
        if len(values) != len(header):
            problems.add(where, f"{len(values)} fields, the header has {len(header)}")
            continue
        row = dict(zip(header, (v.strip() for v in values)))
        rate = _rate(row, where, problems)
        if rate is None:
            continue
        if rate.prefix in rates:
            problems.add(where, f"prefix {rate.prefix} again (first on line {first_line[rate.prefix]})")
            continue
        rates[rate.prefix] = rate
        first_line[rate.prefix] = line_no
    if not rates and not problems:
        problems.add(name, "no rates after the header")
    problems.check()
    return Imported([DeckVersion(deck=deck, effective_from=effective_from, rates=tuple(rates.values()))])


def _rate(row: dict[str, str], where: str, problems: Problems) -> Rate | None:
    before = len(problems.items)
    prefix = row["prefix"]
    if why := prefix_problem(prefix):
        problems.add(where, why)
    call_type = row["call_type"] or None
    if call_type is not None and call_type not in CALL_TYPES:
        problems.add(where, f"call_type {call_type!r} is not one of {', '.join(CALL_TYPES)}")
    price = money(row["rate_per_minute"], "rate_per_minute", where, problems)
    fee = money(row["connect_fee"], "connect_fee", where, problems, blank=Decimal(0))
    first = whole(row["first_increment"], "first_increment", where, problems, positive=True)
    nxt = whole(row["next_increment"], "next_increment", where, problems, positive=True)
    min_s = whole(row["minimum_seconds"], "minimum_seconds", where, problems, blank=0)
    min_c = money(row["minimum_charge"], "minimum_charge", where, problems, blank=Decimal(0))
    tiers = _tiers(row.get("tiers", ""), where, problems)
    if len(problems.items) > before:
        return None
    assert price is not None and fee is not None and first is not None and nxt is not None
    assert min_s is not None and min_c is not None and tiers is not None
    slots = {0: Slot(0, price, 60, first)}
    if nxt != first:
        slots[first] = Slot(first, price, 60, nxt)
    for tier in tiers:
        slots[tier.start] = tier
    return Rate(
        prefix=prefix,
        destination=row["destination"],
        slots=tuple(slots[s] for s in sorted(slots)),
        connect_fee=fee,
        call_type=call_type,
        call_sub_type=row["call_sub_type"] or None,
        minimum_seconds=min_s,
        minimum_charge=min_c,
    )


def _tiers(text: str, where: str, problems: Problems) -> list[Slot] | None:
    """``start:rate_per_minute:increment;...`` with rising starts above 0."""
    out: list[Slot] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        pieces = part.split(":")
        if len(pieces) != 3:
            problems.add(where, f"tier {part!r} is not start:rate_per_minute:increment")
            return None
        start = whole(pieces[0], "tier start", where, problems)
        price = money(pieces[1], "tier rate_per_minute", where, problems)
        step = whole(pieces[2], "tier increment", where, problems, positive=True)
        if start is None or price is None or step is None:
            return None
        if start == 0:
            problems.add(where, f"tier {part!r} starts at 0: the first price is rate_per_minute")
            return None
        if out and start <= out[-1].start:
            problems.add(where, f"tier {part!r} does not start after the tier before it")
            return None
        out.append(Slot(start, price, 60, step))
    return out
