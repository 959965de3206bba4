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

Time-of-day and weekday profiles (optional): ``period`` lines (anywhere in the file) name the
periods of the version, in the deck's time zone, and an optional ``period`` column says which
period a rate prices (empty: any other time)::

    period,peak,Mon-Fri,08:00-19:00
    period,weekend,Sat-Sun,00:00-24:00
    prefix,destination,call_type,call_sub_type,rate_per_minute,connect_fee,first_increment,next_increment,minimum_seconds,minimum_charge,period
    44,United Kingdom,I,,0.0100,0,60,60,0,0,
    44,United Kingdom,I,,0.0200,0,60,60,0,0,peak
    44,United Kingdom,I,,0.0050,0,60,60,0,0,weekend

``period,NAME,DAYS,TIMES``: ``DAYS`` a range ``Mon-Fri``, a list ``Sat;Sun`` or ``*`` (every day);
``TIMES`` local ranges ``08:00-12:00;13:00-19:00`` (``24:00`` ends a day; a night is
``19:00-24:00`` on one line and ``00:00-08:00`` on another). Several lines of one name add to it;
periods must not overlap. A prefix without a rate of its own for a period is priced by its rate
with an empty ``period`` then; a prefix with neither at some time cannot be rated then.
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

from cdrflow.billing import periods as period_rules
from cdrflow.billing.deck_files import Imported, Problems, money, prefix_problem, whole
from cdrflow.billing.model import CALL_TYPES, Deck, DeckVersion, Period, Rate, Slot, Window

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
OPTIONAL = ("tiers", "period")


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
    rates: dict[tuple[str, str], Rate] = {}
    first_line: dict[tuple[str, str], int] = {}
    with handle:
        try:
            lines = [(n, line) for n, line in enumerate(handle, start=1) if line.strip() and not line.startswith("#")]
        except UnicodeDecodeError:
            problems.add(name, "not a cdrflow rate deck: not UTF-8 text")
            problems.check()
            raise
    parsed = [(n, values) for (n, _), values in zip(lines, csv.reader(line for _, line in lines))]
    windows: dict[str, list[Window]] = {}
    for n, values in parsed:
        if values and values[0].strip().lower() == "period":
            _period(values, f"{name} line {n}", problems, windows)
    parsed = [(n, values) for n, values in parsed if not values or values[0].strip().lower() != "period"]
    if not parsed:
        problems.add(name, "not a cdrflow rate deck: no header line")
        problems.check()
    header_no, header_values = parsed[0]
    header = [h.strip().lower() for h in header_values]
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
    for line_no, values in parsed[1:]:
        where = f"{name} line {line_no}"
        if len(values) != len(header):
            problems.add(where, f"{len(values)} fields, the header has {len(header)}")
            continue
        row = dict(zip(header, (v.strip() for v in values)))
        rate = _rate(row, where, problems)
        if rate is None:
            continue
        key = (rate.prefix, rate.period)
        if rate.period and rate.period not in windows:
            problems.add(where, f"period {rate.period!r} is not defined by a period line")
            continue
        if key in rates:
            of = f" for period {rate.period}" if rate.period else ""
            problems.add(where, f"prefix {rate.prefix} again{of} (first on line {first_line[key]})")
            continue
        rates[key] = rate
        first_line[key] = line_no
    periods = tuple(Period(p, tuple(ws)) for p, ws in windows.items())
    for problem in period_rules.problems(periods):
        problems.add(name, problem)
    if not rates and not problems:
        problems.add(name, "no rates after the header")
    problems.check()
    return Imported(
        [DeckVersion(deck=deck, effective_from=effective_from, rates=tuple(rates.values()), periods=periods)]
    )


def _period(values: list[str], where: str, problems: Problems, windows: dict[str, list[Window]]) -> None:
    """``period,NAME,DAYS,TIMES`` (trailing empty fields allowed: a spreadsheet pads lines)."""
    fields = [v.strip() for v in values]
    while len(fields) > 4 and not fields[-1]:
        fields.pop()
    if len(fields) != 4:
        problems.add(where, "a period line is period,NAME,DAYS,TIMES (period,peak,Mon-Fri,08:00-19:00)")
        return
    _, period, day_text, times = fields
    days = period_rules.parse_days(day_text)
    if not period_rules.NAME.match(period):
        problems.add(where, f"period name {period!r} is not letters, digits, _ . + -")
    if days is None:
        problems.add(where, f"period {period}: days {day_text!r} are not like Mon-Fri, Sat;Sun or *")
    found = []
    for part in times.split(";"):
        start_text, _, end_text = part.partition("-")
        start = period_rules.parse_time(start_text)
        end = period_rules.parse_time(end_text, end=True)
        if start is None or end is None:
            problems.add(where, f"period {period}: {part.strip()!r} is not a time range like 08:00-19:00")
        elif end <= start:
            problems.add(where, f"period {period}: {part.strip()} does not end after it starts (a night is two ranges)")
        else:
            found.append((start, end))
    if days is not None and found and period_rules.NAME.match(period):
        windows.setdefault(period, []).extend(Window(days, start, end) for start, end in found)


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
        period=row.get("period", ""),
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
