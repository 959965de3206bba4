"""Time-of-day and weekday periods of a deck version: reading and checking them, and the clock
that says which period a moment is in and where a call crosses into the next one.

The clock is a week table in the deck's time zone: the week (Monday 00:00 to Sunday 24:00, local
wall-clock time) cut at every window's start and end, each piece named by its period ("" where
there is none). A moment's period is looked up from its local weekday and time of day. Wall-clock
time is what counts on a DST day too: a boundary at 02:30 on the spring-forward day (02:00-03:00
does not exist) falls at 03:00, the first wall time after it; on the fall-back day 02:00-03:00
happens twice, and so does a boundary inside it.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cdrflow.billing.model import DAY_SECONDS, WEEKDAY_NAMES, Period, Window

WEEK = 7 * DAY_SECONDS
US = 1_000_000  # the clock counts microseconds: a call may start at a fraction of a second
FOREVER = 1 << 62  # the room of a clock whose period never changes
NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


# -- reading and writing periods ------------------------------------------------------------------


def parse_days(text: str) -> frozenset[int] | None:
    """``Mon-Fri``, ``Sat;Sun``, ``Mon;Wed-Fri`` or ``*`` (every day) as ISO weekdays; None if not."""
    text = text.strip()
    if text == "*":
        return frozenset(range(1, 8))
    index = {name.lower(): i for i, name in enumerate(WEEKDAY_NAMES, start=1)}
    days: set[int] = set()
    for part in text.split(";"):
        ends = [index.get(p.strip().lower()[:3]) for p in part.split("-")]
        if not 1 <= len(ends) <= 2 or None in ends or not part.strip():
            return None
        first, last = ends[0], ends[-1]
        assert first is not None and last is not None
        if last < first:
            return None
        days.update(range(first, last + 1))
    return frozenset(days)


def parse_time(text: str, *, end: bool = False) -> int | None:
    """``08:00`` or ``08:00:30`` as seconds of the day (``24:00`` only as an end); None if not."""
    m = _TIME.match(text.strip())
    if not m:
        return None
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if mi > 59 or s > 59 or h > 24 or (h == 24 and (mi or s or not end)):
        return None
    return h * 3600 + mi * 60 + s


def clock_text(second: int) -> str:
    """Seconds of the day as ``08:00`` (``08:00:30`` when not on the minute; 86400 is ``24:00``)."""
    h, rest = divmod(second, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def days_text(days: Iterable[int]) -> str:
    """ISO weekdays as ``Mon-Fri`` or ``Mon;Wed-Fri`` (what :func:`parse_days` reads)."""
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ";".join(WEEKDAY_NAMES[r[0] - 1] + (f"-{WEEKDAY_NAMES[r[-1] - 1]}" if len(r) > 1 else "") for r in runs)


def describe(period: Period) -> str:
    """``peak: Mon-Fri 08:00-19:00`` (windows separated by ``, ``)."""
    windows = ", ".join(f"{days_text(w.weekdays)} {clock_text(w.start)}-{clock_text(w.end)}" for w in period.windows)
    return f"{period.name}: {windows}"


def rows_of(periods: Iterable[Period]) -> list[dict]:
    """The ``rate_periods`` rows of a version's periods (without its id): one per window."""
    return [
        {"period": p.name, "weekdays": sorted(w.weekdays), "start": clock_text(w.start), "end": clock_text(w.end)}
        for p in periods
        for w in p.windows
    ]


def from_rows(rows: Iterable) -> tuple[Period, ...]:
    """Periods from ``rate_periods`` rows (``period``, ``weekdays``, ``start``/``end`` as text),
    in the order their names come."""
    windows: dict[str, list[Window]] = {}
    for r in rows:
        start, end = parse_time(r.start), parse_time(r.end, end=True)
        if start is None or end is None:
            raise ValueError(f"period {r.period}: {r.start}-{r.end} is no time range")
        windows.setdefault(r.period, []).append(Window(frozenset(r.weekdays), start, end))
    return tuple(Period(name, tuple(ws)) for name, ws in windows.items())


def problems(periods: Iterable[Period]) -> list[str]:
    """What is wrong with a version's periods, one line each (empty: nothing)."""
    out: list[str] = []
    seen: set[str] = set()
    marks: list[tuple[int, int, str]] = []
    for p in periods:
        if not NAME.match(p.name):
            out.append(f"period name {p.name!r} is not letters, digits, _ . + -")
        if p.name in seen:
            out.append(f"period {p.name} is defined twice")
        seen.add(p.name)
        if not p.windows:
            out.append(f"period {p.name} has no time")
        for w in p.windows:
            if not w.weekdays or not w.weekdays <= set(range(1, 8)):
                out.append(f"period {p.name}: weekdays {sorted(w.weekdays)} are not 1 (Monday) to 7 (Sunday)")
            if not 0 <= w.start < w.end <= DAY_SECONDS:
                out.append(f"period {p.name}: {clock_text(w.start)}-{clock_text(w.end)} is no time range of a day")
            marks += [((d - 1) * DAY_SECONDS + w.start, (d - 1) * DAY_SECONDS + w.end, p.name) for d in w.weekdays]
    marks.sort()
    for i, (_, b, name) in enumerate(marks):
        for c, d, other in marks[i + 1 :]:
            if c >= b:
                break
            if other != name:
                day, start = divmod(c, DAY_SECONDS)
                out.append(
                    f"periods {name} and {other} overlap on {WEEKDAY_NAMES[day]} from {clock_text(start)}"
                    f" to {clock_text(min(b, d) - day * DAY_SECONDS)}"
                )
    return out


def week_table(periods: Iterable[Period]) -> tuple[list[int], list[str]]:
    """The week cut where the period changes: starts (seconds from Monday 00:00, the first 0) and
    the period from each start ("" for none); neighbours always differ."""
    marks = [
        ((d - 1) * DAY_SECONDS + w.start, (d - 1) * DAY_SECONDS + w.end, p.name)
        for p in periods
        for w in p.windows
        for d in w.weekdays
    ]
    cuts = sorted({0, *(a for a, _, _ in marks), *(b for _, b, _ in marks if b < WEEK)})
    starts: list[int] = []
    names: list[str] = []
    for cut in cuts:
        name = next((n for a, b, n in marks if a <= cut < b), "")
        if not names or names[-1] != name:
            starts.append(cut)
            names.append(name)
    return starts, names


# -- the clock ------------------------------------------------------------------------------------


class Clock:
    """A version's periods in its deck's time zone: the period of a moment, a call's timeline."""

    def __init__(self, periods: Iterable[Period], timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        starts, self.names = week_table(periods)
        self._steady_days: dict[int, bool] = {}
        self._starts = [s * US for s in starts]
        # the wall time (microseconds from Monday 00:00, past the week's end when it wraps) of the
        # next change after each piece; None when the period never changes
        last_wraps = len(starts) > 1 and self.names[-1] == self.names[0]
        self._next: list[int | None] = []
        for i in range(len(starts)):
            if len(set(self.names)) == 1:
                self._next.append(None)
            elif i + 1 < len(starts):
                self._next.append(self._starts[i + 1])
            else:
                self._next.append(WEEK * US + (self._starts[1] if last_wraps else 0))

    def _utc(self, at: datetime) -> datetime:
        """``at`` in UTC (a naive ``at`` is the deck's local time): arithmetic on an aware datetime
        of a ZoneInfo zone is wall-clock arithmetic, on UTC it is elapsed time."""
        return (at if at.tzinfo is not None else at.replace(tzinfo=self.zone)).astimezone(UTC)

    def locate(self, at: datetime) -> tuple[str, int]:
        """The period ``at`` is in, and for how many microseconds from ``at`` it surely lasts (to
        the next change of the week table, or to a DST change first: the call goes on from there)."""
        utc = self._utc(at)
        local = utc.astimezone(self.zone)
        wall = (
            (local.isoweekday() - 1) * DAY_SECONDS + local.hour * 3600 + local.minute * 60 + local.second
        ) * US + local.microsecond
        i = bisect_right(self._starts, wall) - 1
        name, nxt = self.names[i], self._next[i]
        if nxt is None:
            return name, FOREVER
        room = nxt - wall
        if self._steady(utc):
            return name, room
        offset = local.utcoffset()
        if self._offset(utc, room) == offset:
            return name, room
        low, high = 0, room  # the UTC offset changes in between: find where (the wall clock jumps)
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(utc, middle) == offset:
                low = middle
            else:
                high = middle
        return name, high

    def _steady(self, utc: datetime) -> bool:
        """Whether the zone keeps one UTC offset from ``utc``'s UTC day for 8 days (longer than a
        room can be: a week); known per day, so most calls skip the check of their own room."""
        day = utc.toordinal()
        steady = self._steady_days.get(day)
        if steady is None:
            first = datetime.combine(date.fromordinal(day), time(), UTC)
            steady = self._steady_days[day] = first.astimezone(self.zone).utcoffset() == self._offset(
                first, 8 * DAY_SECONDS * US
            )
        return steady

    def _offset(self, utc: datetime, microseconds: int) -> timedelta | None:
        return (utc + timedelta(microseconds=microseconds)).astimezone(self.zone).utcoffset()

    def period_at(self, at: datetime) -> str:
        return self.locate(at)[0]

    def timeline(self, at: datetime, seconds: int) -> tuple[tuple[int, str], ...]:
        """Where the period changes in a call of ``seconds`` seconds from ``at``: (call second,
        period) pairs, the first (0, the period at the start). Call second ``s`` is in the period
        of the moment it starts (``at`` + ``s``)."""
        out: list[tuple[int, str]] = []
        offset, end = 0, seconds * US
        start = self._utc(at)
        while offset < end:
            name, room = self.locate(start + timedelta(microseconds=offset))
            second = -(-offset // US)
            if second < seconds:
                if out and out[-1][0] == second:
                    out.pop()  # two changes within one second: the later one holds from it
                if not out or out[-1][1] != name:
                    out.append((second, name))
            offset += room
        return tuple(out)
