"""CDRTool's time-of-day profiles (``profiles.csv``) and who uses them (``customers.csv``), as the
schedule of rate tables over the week of the default customer.

CDRTool (``library/rating.php``, ``lookupProfiles``/``lookupRateAudio``) rates a call with the
profiles of its customer: ``Profile WD`` Monday to Friday, ``Profile WE`` Saturday and Sunday, in
the customer's ``Timezone``. A profile cuts the day at up to four hours: ``Rate Id1`` before hour
``00-H1``, ``Rate Id2`` before hour ``H1-H2``, ``Rate Id3`` before ``H2-H3``, ``Rate Id4`` before
``H3-24`` (the columns hold the end hours; an hour past the last one has no rate). A rate table
without the call's destination gives way to the same hour of the ``Fallback`` profile.

Only the default customer is read (no reseller, trusted peer, domain or subscriber): a deck is
one price list. Others are left out with a note, as are holidays (CDRTool rates them as weekend
days) and the customers' own ``Incr`` and ``Min Dur``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from cdrflow.billing.deck_files import Problems

CUSTOMER_HEADER = ["ops", "reseller", "trusted peer", "domain", "subscriber", "profile wd"]
PROFILE_HEADER = ["ops", "reseller", "profile id", "rate id1"]
WORKDAYS = frozenset({1, 2, 3, 4, 5})
WEEKEND = frozenset({6, 7})


@dataclass(frozen=True)
class Schedule:
    """Which rate table (and fallback table) prices each hour of the week, and in which zone."""

    hours: dict[tuple[frozenset[int], int], tuple[str | None, str | None]]  # (days, hour) -> tables
    timezone: str

    def tables(self) -> set[str]:
        return {t for pair in self.hours.values() for t in pair if t}


def rows(path: Path, header: list[str], problems: Problems, *, pad: bool = True) -> list[tuple[int, list[str]]]:
    """A CDRTool CSV's data rows with their line numbers, after checking its header and the Ops
    column. ``pad``: a short row is filled with empty fields (profiles and customers leave the
    unused hour ranges off); otherwise a row of another width is a problem (rates, destinations)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [(n, [v.strip() for v in values]) for n, values in enumerate(csv.reader(handle), start=1) if values]
    if not rows or [h.lower() for h in rows[0][1][: len(header)]] != header:
        problems.add(f"{path.name} line 1", f"not a CDRTool {path.stem} file: the header is not {','.join(header)},...")
        return []
    width = len(rows[0][1])
    out = []
    for n, values in rows[1:]:
        if pad and len(values) < width:
            values = values + [""] * (width - len(values))
        elif len(values) != width:
            problems.add(f"{path.name} line {n}", f"{len(values)} fields, the header has {width}")
            continue
        if values[0] not in ("1", "2", "3"):
            problems.add(f"{path.name} line {n}", f"Ops {values[0]!r} is not 1, 2 or 3")
            continue
        out.append((n, values))
    return out


def _one(folder: Path, stem: str) -> Path | None:
    found = sorted(p for p in folder.glob(f"{stem}*.csv") if p.is_file())
    return found[0] if len(found) == 1 else None


def schedule(folder: Path, problems: Problems, notes: list[str]) -> Schedule | None:
    """The default customer's schedule; None when the folder has no ``customers.csv`` and
    ``profiles.csv`` (one each), or they name no default customer."""
    customers_path, profiles_path = _one(folder, "customers"), _one(folder, "profiles")
    if customers_path is None or profiles_path is None:
        return None
    profiles: dict[str, tuple[int, list[tuple[str, int]]]] = {}  # id -> (line, [(table, end hour)])
    others = 0
    for n, v in rows(profiles_path, PROFILE_HEADER, problems):
        where = f"{profiles_path.name} line {n}"
        if v[1] not in ("", "0"):
            others += 1
            continue
        if v[0] == "3":
            profiles.pop(v[2], None)
            continue
        intervals = []
        for i in range(3, min(len(v), 11), 2):
            end = v[i + 1] if i + 1 < len(v) else ""
            if end and (not end.isdigit() or int(end) > 24):
                problems.add(where, f"{v[2]}: hour {end!r} is not 0 to 24")
            elif end:
                intervals.append((v[i], int(end)))
        profiles[v[2]] = (n, intervals)
    default: tuple[int, list[str]] | None = None
    for n, v in rows(customers_path, CUSTOMER_HEADER, problems):
        if v[1] not in ("", "0") or any(v[2:5]):
            others += 1
        elif v[0] == "3":
            default = None
        else:
            default = (n, v)
    if others:
        notes.append(f"{others} profile or customer row(s) of one reseller, peer, domain or subscriber left out")
    if default is None or problems:
        return None
    n, v = default
    where = f"{customers_path.name} line {n}"
    zone = v[9] if len(v) > 9 and v[9] else "UTC"
    try:
        ZoneInfo(zone)
    except (ValueError, KeyError):
        problems.add(where, f"Timezone {zone!r} is not an IANA time zone")
    if any(x not in ("", "0") for x in v[10:12]):
        notes.append(f"{where}: the customer's own Incr and Min Dur left out (the destinations' apply)")
    hours: dict[tuple[frozenset[int], int], tuple[str | None, str | None]] = {}
    for days, main, alt in ((WORKDAYS, v[5], v[6]), (WEEKEND, v[7], v[8] if len(v) > 8 else "")):
        for name in (main, alt):
            if name and name not in profiles:
                problems.add(where, f"profile {name} is not in {profiles_path.name}")
        if not main:
            problems.add(where, f"no {'weekday' if days == WORKDAYS else 'weekend'} profile")
        if problems:
            continue
        for hour in range(24):
            hours[days, hour] = (_table_at(profiles[main][1], hour), _table_at(profiles[alt][1], hour) if alt else None)
    return None if problems else Schedule(hours, zone)


def _table_at(intervals: list[tuple[str, int]], hour: int) -> str | None:
    """CDRTool's ``if hour < hour1 ... elseif hour < hour2 ...``: the first interval ending after
    ``hour`` (its table may be empty: no rate then)."""
    for table, end in intervals:
        if hour < end:
            return table or None
    return None
