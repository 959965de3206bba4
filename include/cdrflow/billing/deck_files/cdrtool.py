"""CDRTool's rating tables (``setup/csv`` of AGProjects/cdrtool) as one deck version.

Given a folder holding ``destinations*.csv`` and ``rates*.csv`` (or one of those files: its folder
is read). CDRTool's columns (its ``library/rating.php`` and ``doc/RATING.txt``):

- ``destinations.csv``: ``Ops,Reseller,Trusted peer,Domain,Subscriber,Destination,Region,
  Description,Incr,Min Dur,Max Dur,Max Price``. ``Destination`` is the prefix (E.164 without ``+``),
  ``Description`` (``Region`` when empty) the name, ``Incr`` the billing step in seconds (0: 1 s;
  CDRTool rounds the whole duration up to a multiple of it, so both increments are ``Incr``),
  ``Min Dur`` the minimum billed seconds (a shorter answered call is billed ``Min Dur``),
  ``Max Price`` a cap on the call's price in currency units, not ten-thousandths (``max_cost``
  with ``*free``).
- ``rates.csv``: ``Ops,Reseller,Rate,Destination,App,Connect,Duration,Conn In,Duration In``.
  ``Rate`` is the rate table's name (what CDRTool's profiles pick by hour), ``Destination`` the
  prefix, ``Connect`` the connect fee and ``Duration`` the price per 60 seconds, both integers in
  ten-thousandths (CDRTool's ``priceDenominator``: 999 is 0.0999 a minute).

``Ops`` 1 (insert) and 2 (update) add a row, 3 (delete) takes an earlier row of the file out.
The deck rounds half up to 4 decimals (CDRTool's ``number_format`` at ``priceDecimalDigits``).
Left out, with a note: ``App`` other than ``audio`` (SMS), rows for one reseller, peer, domain or
subscriber (CDRTool's per-customer exceptions), ``Max Dur``, inbound prices (``Conn In``,
``Duration In``) and destinations without a rate.

Which tables: the one named by ``rate_name`` or like the deck; else, when the folder has
``customers.csv`` and ``profiles.csv``, the default customer's profiles (:mod:`.cdrtool_profiles`):
the tables they use by hour and weekday become the version's periods (named after the tables),
each prefix priced per period by its table (else the fallback table), in the customer's time
zone. A schedule that uses one table all week (the sample's ``grn_premium``) is that table alone,
with no periods. Else the only table there is.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

from cdrflow.billing.deck_files import Imported, Problems, cdrtool_profiles, money, prefix_problem, whole
from cdrflow.billing.model import Deck, DeckVersion, Period, Rate, Slot, Window

DENOMINATOR = Decimal(10000)
DESTINATION_HEADER = ["ops", "reseller", "trusted peer", "domain", "subscriber", "destination"]
RATE_HEADER = ["ops", "reseller", "rate", "destination", "app", "connect", "duration"]


def _find(folder: Path, stem: str, problems: Problems) -> Path | None:
    found = sorted(p for p in folder.glob(f"{stem}*.csv") if p.is_file())
    if len(found) != 1:
        problems.add(
            str(folder),
            f"not CDRTool rating tables: {'no' if not found else 'more than one'} {stem}*.csv"
            + (f" ({', '.join(p.name for p in found)})" if found else ""),
        )
        return None
    return found[0]


def read(path: Path, deck: Deck, effective_from: date, rate_name: str | None = None) -> Imported:
    """The rate table ``rate_name`` (default: the deck's name when the file has it, else the only
    table there is) as a version of ``deck``."""
    folder = path if path.is_dir() else path.parent
    problems = Problems()
    dest_path, rate_path = _find(folder, "destinations", problems), _find(folder, "rates", problems)
    problems.check()
    assert dest_path is not None and rate_path is not None
    dest_rows = cdrtool_profiles.rows(dest_path, DESTINATION_HEADER, problems, pad=False)
    rate_rows = cdrtool_profiles.rows(rate_path, RATE_HEADER, problems, pad=False)
    problems.check()
    notes: list[str] = []
    customer_rows = 0

    destinations: dict[str, tuple[int, list[str]]] = {}
    for n, v in dest_rows:
        where = f"{dest_path.name} line {n}"
        if any(v[2:5]):
            customer_rows += 1
            continue
        prefix = v[5]
        if why := prefix_problem(prefix):
            problems.add(where, why)
            continue
        if v[0] == "3":
            destinations.pop(prefix, None)
            continue
        if prefix in destinations:
            problems.add(where, f"prefix {prefix} again (first on line {destinations[prefix][0]})")
            continue
        destinations[prefix] = (n, v)

    tables = sorted({v[2] for _, v in rate_rows if v[4] == "audio"})
    plan = None
    if rate_name is None and deck.name not in tables:
        plan = cdrtool_profiles.schedule(folder, problems, notes)
        for table in sorted(plan.tables() - set(tables)) if plan else ():
            problems.add(rate_path.name, f"rate table {table} of the customer's profiles has no audio rates")
        problems.check()
    if rate_name is None and plan is None:
        if deck.name in tables:
            rate_name = deck.name
        elif len(tables) == 1:
            rate_name = tables[0]
        else:
            problems.add(rate_path.name, f"rate tables {', '.join(tables) or 'none'}: name the deck after one of them")
            problems.check()
    wanted = plan.tables() if plan is not None else {rate_name}
    by_table: dict[str, dict[str, tuple[int, Decimal, Decimal]]] = {t: {} for t in wanted if t}
    if plan is not None and len(wanted) == 1:
        rate_name = next(iter(wanted))
    other_apps = 0
    for n, v in rate_rows:
        where = f"{rate_path.name} line {n}"
        rates = by_table.get(v[2])
        if rates is None:
            continue
        if v[4] != "audio":
            other_apps += 1
            continue
        if any(v[7:9]):
            notes.append(f"{where}: inbound prices (Conn In, Duration In) left out")
        prefix = v[3]
        if why := prefix_problem(prefix):
            problems.add(where, why)
            continue
        if v[0] == "3":
            rates.pop(prefix, None)
            continue
        connect = money(v[5], "Connect", where, problems, blank=Decimal(0))
        per_minute = money(v[6], "Duration", where, problems)
        if connect is None or per_minute is None:
            continue
        if prefix in rates:
            problems.add(where, f"prefix {prefix} again (first on line {rates[prefix][0]})")
            continue
        if prefix not in destinations:
            problems.add(where, f"prefix {prefix} is not in {dest_path.name}")
            continue
        rates[prefix] = (n, connect, per_minute)

    # the periods: one per (table, fallback table) the schedule uses, named after them; none when
    # one table (and its fallback) prices the whole week
    used = set(plan.hours.values()) if plan is not None else {(rate_name, None)}
    keys = sorted(used - {(None, None)}, key=str)
    whole_week = (None, None) not in used
    periodless = len(keys) == 1 and whole_week
    names = {k: "" if periodless else _period_name(k) for k in keys}
    out: list[Rate] = []
    for prefix, (n, v) in destinations.items():
        where = f"{dest_path.name} line {n}"
        prices = {}
        for key in keys:
            found = [by_table[t][prefix] for t in key if t and prefix in by_table[t]]
            if found:
                prices[names[key]] = found[0][1:]
        if not prices:
            continue
        incr = whole(v[8], "Incr", where, problems, blank=0) if len(v) > 8 else 0
        min_dur = whole(v[9], "Min Dur", where, problems, blank=0) if len(v) > 9 else 0
        max_price = money(v[11], "Max Price", where, problems, blank=Decimal(0)) if len(v) > 11 else Decimal(0)
        if incr is None or min_dur is None or max_price is None:
            continue
        if len(v) > 10 and v[10] not in ("", "0"):
            notes.append(f"{where}: Max Dur {v[10]} left out")
        if len(prices) == len(keys) and len(set(prices.values())) == 1 and whole_week:
            prices = {"": next(iter(prices.values()))}  # the same price at every hour of the week
        for period, (connect, per_minute) in prices.items():
            out.append(
                Rate(
                    prefix=prefix,
                    destination=v[7] or v[6],
                    slots=(Slot(0, per_minute / DENOMINATOR, 60, incr or 1),),
                    connect_fee=connect / DENOMINATOR,
                    minimum_seconds=min_dur,
                    max_cost=max_price or None,
                    max_cost_strategy="*free" if max_price else None,
                    period=period,
                )
            )
    shown = rate_name or ", ".join(sorted(by_table))
    if not out and not problems:
        problems.add(rate_path.name, f"no audio rates in table {shown}")
    problems.check()
    unrated = len(destinations) - len({r.prefix for r in out})
    if unrated:
        notes.append(f"{unrated} destination(s) without a {shown} rate left out")
    if other_apps:
        notes.append(f"{other_apps} {shown} rate(s) for other applications than audio (SMS) left out")
    if customer_rows:
        notes.append(f"{customer_rows} per-customer destination row(s) left out")
    deck = dataclasses.replace(deck, rounding_method="half_up", rounding_decimals=4)
    periods: tuple[Period, ...] = ()
    if plan is not None and not periodless:
        deck = dataclasses.replace(deck, timezone=plan.timezone)
        periods = tuple(Period(names[k], _windows(plan.hours, k)) for k in keys)
    version = DeckVersion(deck=deck, effective_from=effective_from, rates=tuple(out), periods=periods)
    return Imported([version], notes)


def _period_name(key: tuple[str | None, str | None]) -> str:
    """A table's name as a period name (``+fallback`` when it has one; other characters ``_``)."""
    text = "+".join(t or "none" for t in (key if key[1] else key[:1]))
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.+-") else "_" for c in text)


def _windows(hours: dict, key: tuple[str | None, str | None]) -> tuple[Window, ...]:
    """The hours of the week ``key`` prices, as windows of consecutive hours."""
    out = []
    for days in (cdrtool_profiles.WORKDAYS, cdrtool_profiles.WEEKEND):
        start = None
        for hour in range(25):
            inside = hour < 24 and hours.get((days, hour)) == key
            if inside and start is None:
                start = hour
            elif not inside and start is not None:
                out.append(Window(days, start * 3600, hour * 3600))
                start = None
    return tuple(out)
