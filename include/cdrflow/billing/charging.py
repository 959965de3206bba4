"""Rating a period's legs into charge rows, shared by billruns and reratings.

:class:`Decks` holds the versions of every deck and their prefix indexes for one run (loaded once,
and kept for the next run of the process); :class:`Rater` turns one leg (deck, moment, number,
billing seconds) into the rating columns of its charge as COPY text, with bounded caches per
(deck version, number) for the matched prefix and per (deck version, rate, billing seconds) for
the rating. A rating the cache misses is computed in integer arithmetic by
:mod:`cdrflow.billing.bulk_rating` when the rate has the common shape (a few us), else by
``rating.rate_call`` (exact rationals, 100-200 us).

A prefix with rates by time-of-day period is looked up on the version's clock first: a call that
stays in the period it starts in is cached per (version, rate, billing seconds, period) like any
other; only a call that crosses into another period is rated on its own (its split depends on
the moment it starts).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from cdrflow.billing import decks
from cdrflow.billing.bulk_rating import CompiledRate, compile_rate
from cdrflow.billing.model import DeckVersion, Rate
from cdrflow.billing.periods import Clock
from cdrflow.billing.prefixes import PrefixIndex, digits_of
from cdrflow.billing.rating import (
    NO_MATCH,
    NO_RATE_NOW,
    NO_SECONDS,
    NOT_RATABLE,
    Charge,
    Unrated,
    charge_dict,
    rate_call,
    starting_rate,
)
from cdrflow.config.errors import CdrflowError

NO_DECK = "no deck for the account"
NOT_IN_FORCE = "deck not in force"
REASONS = (NO_DECK, NO_MATCH, NOT_IN_FORCE, NOT_RATABLE, NO_SECONDS, NO_RATE_NOW)
# ratings kept at most (about 1 KB each): a cache that grows past it starts again, so memory stays
# flat however many distinct (rate, billing seconds) a period has
CACHE_LIMIT = 100_000

CHARGE_COLUMNS = (
    "billrun_id",
    "call_id",
    "carrier",
    "record_key",
    "start_time",
    "account_id",
    "side",
    "deck",
    "deck_version_id",
    "prefix",
    "destination",
    "call_type",
    "call_sub_type",
    "billing_seconds",
    "billed_seconds",
    "cost",
    "currency",
    "breakdown",
    "unrated_reason",
)


# -- deck versions by moment ---------------------------------------------------------------------

# Deck versions loaded in this process, by (database, version id, imported_at): a version's rates
# never change once stored, and loading 50,000 rates costs about a second; a few are kept (a
# billrun's sell and buy decks), the oldest dropped first, so memory stays bounded.
LOADED_LIMIT = 4
_DAY = timedelta(days=1)
_LOADED: dict[tuple[str, int, datetime | None], tuple[DeckVersion, PrefixIndex]] = {}


class Decks:
    """The versions of each deck and their prefix indexes, loaded once per billrun."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.deck_of: dict[str, Any] = {d.name: d for d in decks.decks(conn)}
        self._starts: dict[str, tuple[list[date], list[int]]] = {}
        self._database = conn.engine.url.render_as_string(hide_password=True)
        self._imported: dict[int, datetime] = {}
        for v in decks.versions(conn):  # by deck, version: a later version wins a tie of dates
            self._imported[v.id] = v.imported_at
            days, ids = self._starts.setdefault(v.deck, ([], []))
            days.append(v.effective_from)
            ids.append(v.id)
        for name, (days, ids) in list(self._starts.items()):
            order = sorted(range(len(days)), key=lambda i: (days[i], i))
            self._starts[name] = ([days[i] for i in order], [ids[i] for i in order])
        self._zone = {name: ZoneInfo(d.timezone) for name, d in self.deck_of.items()}
        # the first instant of each version's effective_from in its deck's zone: comparing a call's
        # start with these is comparing its local date, without converting each call's time. That
        # holds while the zone's offset is the same a day either side of each midnight; a deck
        # whose clock changes that close to one (a fall-back at midnight repeats local hours of
        # the day before) keeps comparing local dates
        self._bounds: dict[str, list[datetime]] = {}
        for name, (days, _) in self._starts.items():
            zone = self._zone.get(name)
            if zone is None:
                continue
            bounds = [datetime.combine(day, time(), zone).astimezone(UTC) for day in days]
            if all((b - _DAY).astimezone(zone).utcoffset() == (b + _DAY).astimezone(zone).utcoffset() for b in bounds):
                self._bounds[name] = bounds
        self._loaded: dict[int, tuple[DeckVersion, PrefixIndex]] = {}
        self._clocks: dict[int, Clock] = {}

    def in_force(self, deck: str, at: datetime) -> int | None:
        """Id of the version of ``deck`` in force at ``at`` (its latest effective_from on or before
        ``at``'s date in the deck's zone; ties: the highest version), None if none yet."""
        bounds = self._bounds.get(deck)
        if bounds is not None:
            i = bisect_right(bounds, at)
        else:
            days = self._starts.get(deck, ([], []))[0]
            i = bisect_right(days, at.astimezone(self._zone[deck]).date()) if days else 0
        return self._starts[deck][1][i - 1] if i else None

    def version(self, version_id: int) -> tuple[DeckVersion, PrefixIndex]:
        found = self._loaded.get(version_id)
        if found is None:
            key = (self._database, version_id, self._imported.get(version_id))
            found = _LOADED.get(key)
            if found is None:
                version = decks.load_version_id(self.conn, version_id)
                found = (version, PrefixIndex.of(version))
                while len(_LOADED) >= LOADED_LIMIT:
                    del _LOADED[next(iter(_LOADED))]
                _LOADED[key] = found
            self._loaded[version_id] = found
        return found

    def clock(self, version_id: int) -> Clock:
        """The version's periods on its deck's clock (built once)."""
        found = self._clocks.get(version_id)
        if found is None:
            version = self.version(version_id)[0]
            found = self._clocks[version_id] = Clock(version.periods, version.deck.timezone)
        return found


# -- rating one leg ---------------------------------------------------------------------------------


# The rating columns of a charge, (deck, version id, prefix, destination, call_type, call_sub_type,
# billing s, billed s, cost, currency, breakdown json, unrated reason), as COPY text: a cached
# rating is written without formatting it again.
def copy_line(*row: Any) -> str:
    return "\t".join(map(copy_text, row))


class Rater:
    def __init__(self, book: Decks) -> None:
        self.book = book
        self._cache: dict[tuple, str] = {}
        self._compiled: dict[tuple[int, int], CompiledRate | None] = {}
        self._positions: dict[tuple[int, str | None], int | None] = {}
        self.hits = 0

    def rate(self, deck: str | None, at: datetime, number: str | None, seconds: int | None) -> str:
        """The rating columns of one leg's charge, as COPY text."""
        if deck is None or deck not in self.book.deck_of:
            return self._unrated(None, None, seconds, NO_DECK)
        version_id = self.book.in_force(deck, at)
        if version_id is None:
            return self._unrated(deck, None, seconds, NOT_IN_FORCE)
        version, index = self.book.version(version_id)
        currency = version.deck.currency
        digits = digits_of(number)
        matched = (version_id, digits)
        position = self._positions.get(matched, -1)
        if position == -1:
            if len(self._positions) >= CACHE_LIMIT:
                self._positions.clear()
            position = self._positions[matched] = index.position(digits) if digits is not None else None
        if position is None:
            if seconds == 0:  # unanswered: costs nothing, whatever it dialled
                return copy_line(deck, version_id, None, None, None, None, 0, 0, Decimal(0), currency, None, None)
            return self._unrated(deck, version_id, seconds, NOT_RATABLE if digits is None else NO_MATCH)
        if seconds is None:
            return self._unrated(deck, version_id, seconds, NO_SECONDS)
        by_period = index.by_period.get(position)
        rate: Rate | None
        if by_period is None:
            key: tuple = (version_id, position, seconds)
            rate = index.rates[position]
        else:  # decide the span first: a call inside one period is cached like any other
            rate, timeline = starting_rate(by_period, self.book.clock(version_id), at, seconds)
            if rate is None:
                return self._unrated(deck, version_id, seconds, NO_RATE_NOW)
            if timeline is not None:
                split = rate_call(version, rate, seconds, by_period=by_period, timeline=timeline)
                return self._row(deck, version_id, seconds, split)
            key = (version_id, position, seconds, rate.period)
        row = self._cache.get(key)
        if row is not None:
            self.hits += 1
            return row
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        compiled = self._compiled_rate(version, version_id, position) if by_period is None and seconds >= 0 else None
        if compiled is not None:
            row = self._cache[key] = compiled.row(seconds)
            return row
        result = rate_call(version, rate, seconds, by_period=by_period)
        row = self._cache[key] = self._row(deck, version_id, seconds, result)
        return row

    def _compiled_rate(self, version: DeckVersion, version_id: int, position: int) -> CompiledRate | None:
        """The rate compiled for integer rating (bulk_rating), None when it is not of that shape."""
        key = (version_id, position)
        if key not in self._compiled:
            if len(self._compiled) >= CACHE_LIMIT:
                self._compiled.clear()
            self._compiled[key] = compile_rate(version, version_id, self.book.version(version_id)[1].rates[position])
        return self._compiled[key]

    def _row(self, deck: str, version_id: int, seconds: int, result: Charge | Unrated) -> str:
        if not isinstance(result, Charge):
            return self._unrated(deck, version_id, seconds, result.reason)
        return copy_line(
            deck,
            version_id,
            result.prefix,
            result.destination,
            result.call_type,
            result.call_sub_type,
            seconds,
            result.billed_seconds,
            result.cost,
            result.currency,
            json.dumps(charge_dict(result), separators=(",", ":")),
            None,
        )

    @staticmethod
    def _unrated(deck: str | None, version_id: int | None, seconds: int | None, reason: str) -> str:
        return copy_line(deck, version_id, None, None, None, None, seconds, None, None, None, None, reason)


def copy_text(value: Any) -> str:
    # most values are plain text with nothing to escape: two scans in C, no replace
    if value.__class__ is str and value.isprintable() and "\\" not in value:
        return value
    if value is None:
        return "\\N"
    if isinstance(value, Decimal):
        return format(value, "f")
    s = str(value)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# The temporary tables charges are COPYed into before they are moved into ``charges`` in one
# statement: a billrun's when it writes the safe way (charge_writer.py: its rows go in with ON
# CONFLICT, skipping calls charged meanwhile; their ids drawn beforehand) and a rerating's (which
# also names the charge each row replaces).
STAGED = {"billrun_staging": ("id", *CHARGE_COLUMNS), "rerate_staging": (*CHARGE_COLUMNS, "replaces")}


def stage(conn: Connection, name: str) -> str:
    """Create the staging table ``name`` (dropped at commit), its columns taken from ``charges``
    itself so their types cannot drift, and return the COPY statement that fills it."""
    columns = ", ".join(STAGED[name])  # names of this module, never user text
    conn.execute(
        text("CREATE TEMPORARY TABLE " + name + " ON COMMIT DROP AS SELECT " + columns + " FROM charges WITH NO DATA")
    )
    return "COPY " + name + " (" + columns + ") FROM STDIN"


def move_staged(name: str, on_conflict: str = "") -> str:
    """The INSERT that moves the staging table ``name`` into ``charges``."""
    columns = ", ".join(STAGED[name])
    return "INSERT INTO charges (" + columns + ") SELECT " + columns + " FROM " + name + on_conflict


# What a billrun keeps of each charge it wrote, for its invoice lines, counts and billing feed (the
# temporary table CHARGED, dropped at commit): those read the rows this transaction charged from
# here, a narrow table of this session, instead of finding them again in ``charges`` (wide rows,
# the breakdown among them, read back through an index). Every column of the charge but its
# breakdown, in the same order (the billrun writes both rows from the same text), and the call's
# numbers as the billing feed shows them (``caller``, ``callee``: coalesce of the E.164 form and
# the number as written, from billable_legs.LEGS), so that the feed need not join ``calls``. Only
# the charges actually inserted are kept: a leg another billrun charged meanwhile is not.
CHARGED = "billrun_charged"
NUMBERS = ("caller", "callee")
CHARGED_COLUMNS = ("id", *(c for c in CHARGE_COLUMNS if c != "breakdown"), *NUMBERS)


def keep_charged(conn: Connection) -> None:
    """Create the temporary table :data:`CHARGED` (dropped at commit), typed as ``charges``."""
    columns = ", ".join(CHARGED_COLUMNS[: -len(NUMBERS)])  # names of this module, never user text
    numbers = ", ".join("CAST(NULL AS text) AS " + n for n in NUMBERS)
    conn.execute(
        text(
            "CREATE TEMPORARY TABLE "
            + CHARGED
            + " ON COMMIT DROP AS SELECT "
            + columns
            + ", "
            + numbers
            + " FROM charges WITH NO DATA"
        )
    )


class DanglingReference(CdrflowError):
    """A charge names a billrun or deck version that no longer exists (deleted meanwhile)."""


def hold_references(conn: Connection, billrun_id: int, table: str) -> None:
    """Lock, FOR KEY SHARE, the billrun ``billrun_id`` and every deck version the charges in
    ``table`` (this run's, a name of this package) name, and raise :class:`DanglingReference` when
    one is gone: what the foreign keys that sql/028 dropped did per row, once per run. Until the
    transaction ends, deleting them waits, then is refused (trigger
    ``cdrflow_refuse_referenced_delete``)."""
    held = conn.execute(text("SELECT id FROM billruns WHERE id = :id FOR KEY SHARE"), {"id": billrun_id}).one_or_none()
    if held is None:
        raise DanglingReference(f"billrun {billrun_id} was deleted while it ran")
    named = [
        r[0]
        for r in conn.execute(
            text("SELECT DISTINCT deck_version_id FROM " + table + " WHERE deck_version_id IS NOT NULL")
        )
    ]
    if named:
        found = {
            r[0]
            for r in conn.execute(
                text("SELECT id FROM rate_deck_versions WHERE id = ANY(:ids) FOR KEY SHARE"), {"ids": named}
            )
        }
        gone = sorted(set(named) - found)
        if gone:
            raise DanglingReference(f"deck version(s) {gone} were deleted while charges were rated on them")
