"""CGRateS ``Timings.csv`` and the ``TimingTag`` of ``RatingPlans.csv`` bindings, as a deck
version's periods and its rates by period.

``Timings.csv``: ``Tag,Years,Months,MonthDays,WeekDays,Time``. ``WeekDays`` are Go's (0 Sunday
to 6 Saturday, ``;``-separated, ``*any`` every day); ``Time`` is the start (``08:00:00``), or
start and end (``08:00:00;19:00:00``; without an end, the timing lasts to midnight). A binding
applies while its timing is active; among the bindings of a prefix active at a moment, the
higher ``Weight`` wins, then the timing that started last (CGRateS's rate interval choice:
``PEAK`` from 08:00 beats ``OFFPEAK_MORNING`` from 00:00 at 09:00 on a weekday). ``*any`` is
always active, from 00:00.

The week is cut wherever a timing of the plan starts or ends; each piece with the same active
timings is one period, named after the timing that started last (``*any`` alone: no period, the
prefixes' any-time rates). Timings of some years, months or days of the month only (holidays)
are no time of the week: their bindings are left out with a note.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from cdrflow.billing import periods as period_rules
from cdrflow.billing.deck_files import Problems
from cdrflow.billing.model import DAY_SECONDS, Period, Rate, Window

ANY = "*any"
FILE = "Timings.csv"


@dataclass(frozen=True)
class Timing:
    tag: str
    days: frozenset[int]  # ISO weekdays
    start: int  # seconds of the day
    end: int


@dataclass(frozen=True)
class Candidate:
    """A rate a binding offers a prefix: at this weight, while this timing is active."""

    weight: Decimal
    timing: Timing
    line: int
    rate: Rate


ANY_TIMING = Timing(ANY, frozenset(range(1, 8)), 0, DAY_SECONDS)


def read(folder: Path, problems: Problems) -> dict[str, Timing | str]:
    """The timings of ``folder``'s ``Timings.csv`` (none without one): tag -> timing, or why it
    is no time of the week."""
    path = folder / FILE
    if not path.is_file():
        return {}
    out: dict[str, Timing | str] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for n, values in enumerate(csv.reader(handle), start=1):
            if not values or not "".join(values).strip() or values[0].lstrip().startswith("#"):
                continue
            where = f"{FILE} line {n}"
            values = [v.strip() for v in values]
            if len(values) < 6:
                problems.add(where, f"{len(values)} fields, CGRateS {FILE} has 6: not a CGRateS {FILE}")
                continue
            tag, years, months, month_days, week_days, time_text = values[:6]
            dated = [
                f"{w} {v}"
                for w, v in (("Years", years), ("Months", months), ("MonthDays", month_days))
                if v not in ("", ANY)
            ]
            if dated:
                out[tag] = f"timing {tag} is for {', '.join(dated)} only (dates, not times of the week)"
                continue
            days: set[int] = set()
            for part in [] if week_days in ("", ANY) else week_days.split(";"):
                if not part.strip().isdigit() or int(part) > 6:
                    problems.add(where, f"{tag}: WeekDays {part!r} is not 0 (Sunday) to 6 (Saturday)")
                else:
                    days.add(int(part) or 7)
            start_text, _, end_text = time_text.partition(";")
            start = 0 if start_text in ("", ANY) else period_rules.parse_time(start_text)
            end = DAY_SECONDS if end_text in ("", ANY) else period_rules.parse_time(end_text, end=True)
            if start is None or end is None or end <= start:
                problems.add(where, f"{tag}: Time {time_text!r} is not HH:MM:SS or HH:MM:SS;HH:MM:SS (start;end)")
                continue
            out[tag] = Timing(tag, frozenset(days) if days else ANY_TIMING.days, start, end)
    return out


def choose(
    plan_id: str, candidates: dict[str, list[Candidate]], problems: Problems
) -> tuple[tuple[Period, ...], list[Rate]]:
    """The plan's periods and its rates: per prefix and period, the winning binding's rate (one
    any-time rate for a prefix that one binding prices all week)."""
    timings = {c.timing for found in candidates.values() for c in found}
    pieces: dict[frozenset[str], list[tuple[int, int, int]]] = {}  # active tags -> (day, start, end)
    for day in range(1, 8):
        cuts = sorted({0, DAY_SECONDS} | {s for t in timings if day in t.days for s in (t.start, t.end)})
        for a, b in zip(cuts, cuts[1:], strict=False):
            active = frozenset(t.tag for t in timings if day in t.days and t.start <= a < t.end)
            pieces.setdefault(active, []).append((day, a, b))
    names = _names(pieces, {t.tag: t for t in timings})
    periods = tuple(Period(name, _windows(pieces[a])) for a, name in names.items() if name)
    out: list[Rate] = []
    for prefix in sorted(candidates):
        winners: dict[frozenset[str], Candidate] = {}
        for active in pieces:
            live = [c for c in candidates[prefix] if c.timing.tag in active]
            if not live:
                continue
            best = max(live, key=lambda c: (c.weight, c.timing.start))
            tied = sorted(
                (c for c in live if (c.weight, c.timing.start) == (best.weight, best.timing.start)),
                key=lambda c: c.line,
            )
            if len(tied) > 1:
                _tie(plan_id, prefix, tied, problems)
            winners[active] = best
        if len(winners) == len(pieces) and len({id(c) for c in winners.values()}) == 1:
            out.append(next(iter(winners.values())).rate)
            continue
        out += [replace(c.rate, period=names[active]) for active, c in winners.items()]
    return periods, _unique(out)


def _tie(plan_id: str, prefix: str, tied: list[Candidate], problems: Problems) -> None:
    first, second = tied[0], tied[1]
    where = f"RatingPlans.csv line {second.line}"
    if first.timing == second.timing:
        message = f"{plan_id}: prefix {prefix or ANY} twice at weight {second.weight} (first on line {first.line})"
    else:
        message = (
            f"{plan_id}: prefix {prefix or ANY} at weight {second.weight} by timings {first.timing.tag} (line"
            f" {first.line}) and {second.timing.tag}, both from {period_rules.clock_text(second.timing.start)}:"
            " which applies is undefined"
        )
    if f"{where}: {message}" not in problems.items:
        problems.add(where, message)


def _unique(rates: list[Rate]) -> list[Rate]:
    """One rate per (prefix, period): two active sets may both be the any-time rest of the week."""
    seen: dict[tuple[str, str], Rate] = {}
    for r in rates:
        seen.setdefault((r.prefix, r.period), r)
    return list(seen.values())


def _names(pieces: dict[frozenset[str], list], timings: dict[str, Timing]) -> dict[frozenset[str], str]:
    """Each set of active timings' period name: its timing that started last ("" for ``*any``
    alone or nothing); the set's tags joined by ``+`` where two sets would share a name."""
    base = {}
    for active in pieces:
        named = sorted(active - {ANY}, key=lambda tag: (-timings[tag].start, tag))
        base[active] = named[0] if named else ""
    shared = Counter(v for v in base.values() if v)
    out = {}
    for active, name in base.items():
        if shared[name] > 1:
            name = "+".join(sorted(active - {ANY}))
        out[active] = "".join(c if c.isascii() and (c.isalnum() or c in "_.+-") else "_" for c in name)
    return out


def _windows(pieces: list[tuple[int, int, int]]) -> tuple[Window, ...]:
    """Pieces of days as windows: consecutive pieces of a day joined, equal times on several days
    one window."""
    by_day: dict[int, list[list[int]]] = {}
    for day, a, b in sorted(pieces):
        runs = by_day.setdefault(day, [])
        if runs and runs[-1][1] == a:
            runs[-1][1] = b
        else:
            runs.append([a, b])
    days_of: dict[tuple[int, int], set[int]] = {}
    for day, runs in by_day.items():
        for a, b in runs:
            days_of.setdefault((a, b), set()).add(day)
    return tuple(Window(frozenset(days), a, b) for (a, b), days in sorted(days_of.items()))
