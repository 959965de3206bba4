"""Rate decks in the warehouse (``sql/013_rate_decks.sql``, ``sql/020_rate_profiles.sql``): store a
version, read the version in force at a moment, list versions, and say what changed between two
versions.

A version's time-of-day periods are rows of ``rate_periods`` (one per window), its rates say
which period they price (``rates.period``, ``''`` for any time). Periods are read in the deck's
time zone, which is set when the deck is created: a version with periods for a deck in another
zone is refused rather than priced at the wrong hours.

A deck's settings other than name, currency and kind (rounding, time zone, and whatever the rater
adds to :class:`~cdrflow.billing.model.Deck`) are kept in ``rate_decks.settings`` (jsonb) and read
back into the Deck fields that exist, so a new setting needs no migration. They are written when
the deck is created; a later version keeps them (a re-import does not reset a deck's settings).
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from cdrflow.billing import periods as period_rules
from cdrflow.billing.model import DECK_KINDS, Deck, DeckVersion, Period, Rate, Slot
from cdrflow.config.errors import CdrflowError

_OWN_COLUMNS = ("name", "currency", "kind")
RATE_COLUMNS = (
    "version_id",
    "prefix",
    "destination",
    "call_type",
    "call_sub_type",
    "connect_fee",
    "minimum_seconds",
    "minimum_charge",
    "rounding_method",
    "rounding_decimals",
    "max_cost",
    "max_cost_strategy",
    "slots",
    "period",
)


class DeckMismatch(CdrflowError):
    """A new version disagrees with its deck (currency or kind)."""


@dataclass(frozen=True)
class VersionInfo:
    id: int
    deck: str
    version: int
    effective_from: date
    imported_at: datetime
    source: str
    rates: int


# -- settings -----------------------------------------------------------------------------------


def deck_settings(deck: Deck) -> dict:
    """The Deck fields kept in ``settings`` (every field but name, currency and kind)."""
    return {k: _jsonable(v) for k, v in dataclasses.asdict(deck).items() if k not in _OWN_COLUMNS}


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def deck_from_row(name: str, currency: str, kind: str, settings: dict | None) -> Deck:
    """A Deck from its row: the settings that are Deck fields (others, from a newer cdrflow or an
    older field since dropped, are ignored)."""
    known = {f.name: f for f in dataclasses.fields(Deck)}
    kwargs = {}
    for key, value in (settings or {}).items():
        if key in known and key not in _OWN_COLUMNS:
            kwargs[key] = _typed(known[key], value)
    return Deck(name=name, currency=currency, kind=kind, **kwargs)


def _typed(f: dataclasses.Field, value):
    """Decimal settings come back from JSON as strings."""
    if value is not None and "Decimal" in str(f.type):
        return Decimal(str(value))
    return value


def get_deck(conn: Connection, name: str) -> Deck | None:
    row = conn.execute(
        text("SELECT name, currency, kind, settings FROM rate_decks WHERE name = :n"), {"n": name}
    ).one_or_none()
    return deck_from_row(row.name, row.currency, row.kind, row.settings) if row else None


def decks(conn: Connection) -> list[Deck]:
    rows = conn.execute(text("SELECT name, currency, kind, settings FROM rate_decks ORDER BY name"))
    return [deck_from_row(r.name, r.currency, r.kind, r.settings) for r in rows]


# -- store ----------------------------------------------------------------------------------------


def store(conn: Connection, version: DeckVersion, source: str) -> int:
    """Store ``version`` as the deck's next version (creating the deck if new) and return its id.

    The deck row is locked for the transaction, so two imports of one deck get versions 1 and 2,
    never the same number. An existing deck must have the same currency and kind. Rates are
    written with one COPY (13,000 rates take tens of milliseconds)."""
    deck = version.deck
    if deck.kind not in DECK_KINDS:
        raise DeckMismatch(f"deck {deck.name}: kind {deck.kind!r} is not one of {', '.join(DECK_KINDS)}")
    _check_rates(version)
    conn.execute(
        text(
            "INSERT INTO rate_decks (name, currency, kind, settings) VALUES (:n, :c, :k, CAST(:s AS jsonb)) "
            "ON CONFLICT (name) DO NOTHING"
        ),
        {"n": deck.name, "c": deck.currency, "k": deck.kind, "s": json.dumps(deck_settings(deck))},
    )
    row = conn.execute(
        text("SELECT currency, kind, settings ->> 'timezone' AS zone FROM rate_decks WHERE name = :n FOR UPDATE"),
        {"n": deck.name},
    ).one()
    if row.currency != deck.currency:
        raise DeckMismatch(f"deck {deck.name} is in {row.currency}, not {deck.currency}")
    if row.kind != deck.kind:
        raise DeckMismatch(f"deck {deck.name} is a {row.kind} deck, not {deck.kind}")
    zone = row.zone or "UTC"
    if version.periods and zone != deck.timezone:
        raise DeckMismatch(
            f"deck {deck.name} keeps its time in {zone}, not {deck.timezone}: its periods would be read"
            " at other hours (a deck's time zone is set when it is created)"
        )
    version_id = conn.execute(
        text(
            "INSERT INTO rate_deck_versions (deck, version, effective_from, source, rates) "
            "SELECT :n, COALESCE(max(version), 0) + 1, :ef, :src, :count FROM rate_deck_versions WHERE deck = :n "
            "RETURNING id"
        ),
        {"n": deck.name, "ef": version.effective_from, "src": source, "count": len(version.rates)},
    ).scalar_one()
    _copy_rates(conn, version_id, version.rates)
    rows = [{"v": version_id, **row} for row in period_rules.rows_of(version.periods)]
    if rows:
        conn.execute(
            text(
                "INSERT INTO rate_periods (version_id, period, weekdays, start_time, end_time) "
                "VALUES (:v, :period, CAST(:weekdays AS smallint[]), CAST(:start AS time), CAST(:end AS time)) "
                "ON CONFLICT DO NOTHING"
            ),
            rows,
        )
    return int(version_id)


def _check_rates(version: DeckVersion) -> None:
    """What the tables would refuse anyway, said plainly (the importers check more, with lines)."""
    name = version.deck.name
    if version.periods:
        try:
            ZoneInfo(version.deck.timezone)
        except (ValueError, KeyError):
            raise DeckMismatch(f"deck {name}: time zone {version.deck.timezone!r} is not an IANA zone") from None
    wrong = period_rules.problems(version.periods)
    if wrong:
        raise DeckMismatch(f"deck {name}: {wrong[0]}")
    defined = {p.name for p in version.periods}
    seen: set[tuple[str, str]] = set()
    for rate in version.rates:
        if (rate.prefix, rate.period) in seen:
            at = f" for period {rate.period}" if rate.period else ""
            raise DeckMismatch(f"deck {name}: prefix {rate.prefix} twice{at} in one version")
        seen.add((rate.prefix, rate.period))
        if rate.period and rate.period not in defined:
            raise DeckMismatch(f"deck {name}: prefix {rate.prefix} is priced for period {rate.period}, not defined")
        if not rate.slots or rate.slots[0].start != 0:
            raise DeckMismatch(f"deck {name}: prefix {rate.prefix}: its first slot must start at 0")


def _copy_field(value) -> str:
    if value is None:
        return "\\N"
    s = str(value)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def slots_json(slots: tuple[Slot, ...]) -> str:
    return json.dumps(
        [{"start": s.start, "price": str(s.price), "unit": s.unit, "increment": s.increment} for s in slots],
        separators=(",", ":"),
    )


def _copy_rates(conn: Connection, version_id: int, rates: tuple[Rate, ...]) -> None:
    buf = io.StringIO()
    for r in rates:
        values = (
            version_id,
            r.prefix,
            r.destination,
            r.call_type,
            r.call_sub_type,
            r.connect_fee,
            r.minimum_seconds,
            r.minimum_charge,
            r.rounding_method,
            r.rounding_decimals,
            r.max_cost,
            r.max_cost_strategy,
            slots_json(r.slots),
            r.period,
        )
        buf.write("\t".join(_copy_field(v) for v in values))
        buf.write("\n")
    buf.seek(0)
    with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
        cur.copy_expert(f"COPY rates ({', '.join(RATE_COLUMNS)}) FROM STDIN", buf)


# -- read -------------------------------------------------------------------------------------------


def versions(conn: Connection, deck_name: str | None = None) -> list[VersionInfo]:
    """The versions of a deck (of every deck when None), by deck and version."""
    rows = conn.execute(
        text(
            "SELECT id, deck, version, effective_from, imported_at, source, rates FROM rate_deck_versions "
            "WHERE CAST(:n AS text) IS NULL OR deck = :n ORDER BY deck, version"
        ),
        {"n": deck_name},
    )
    return [VersionInfo(**r._mapping) for r in rows]


def version_info(conn: Connection, version_id: int) -> VersionInfo:
    row = conn.execute(
        text(
            "SELECT id, deck, version, effective_from, imported_at, source, rates FROM rate_deck_versions WHERE id = :id"
        ),
        {"id": version_id},
    ).one()
    return VersionInfo(**row._mapping)


def latest(conn: Connection, deck_name: str) -> VersionInfo | None:
    """The deck's last imported version (the one a new import is compared with)."""
    found = versions(conn, deck_name)
    return found[-1] if found else None


def _local_date(deck: Deck, at: date | datetime) -> date:
    """The date of ``at`` in the deck's time zone (an aware datetime is converted; a naive one is
    taken as the deck's local time; a date is itself)."""
    if isinstance(at, datetime):
        if at.tzinfo is not None:
            at = at.astimezone(ZoneInfo(deck.timezone))
        return at.date()
    return at


def version_in_force(conn: Connection, deck_name: str, at: date | datetime) -> VersionInfo | None:
    deck = get_deck(conn, deck_name)
    if deck is None:
        return None
    row = conn.execute(
        text(
            "SELECT id, deck, version, effective_from, imported_at, source, rates FROM rate_deck_versions "
            "WHERE deck = :n AND effective_from <= :d ORDER BY effective_from DESC, version DESC LIMIT 1"
        ),
        {"n": deck_name, "d": _local_date(deck, at)},
    ).one_or_none()
    return VersionInfo(**row._mapping) if row else None


def load_version(conn: Connection, deck_name: str, at: date | datetime) -> DeckVersion | None:
    """The version of ``deck_name`` in force at ``at``: the latest ``effective_from`` on or before
    ``at``'s date in the deck's time zone, ties to the highest version. None: no such deck, or
    nothing in force yet."""
    info = version_in_force(conn, deck_name, at)
    if info is None:
        return None
    return load_version_id(conn, info.id)


def load_version_id(conn: Connection, version_id: int) -> DeckVersion:
    head = conn.execute(
        text(
            "SELECT d.name, d.currency, d.kind, d.settings, v.effective_from FROM rate_deck_versions v "
            "JOIN rate_decks d ON d.name = v.deck WHERE v.id = :id"
        ),
        {"id": version_id},
    ).one()
    deck = deck_from_row(head.name, head.currency, head.kind, head.settings)
    rows = conn.execute(
        text(
            "SELECT prefix, destination, slots::text AS slots, connect_fee, call_type, call_sub_type, minimum_seconds, "
            "minimum_charge, rounding_method, rounding_decimals, max_cost, max_cost_strategy, period "
            "FROM rates WHERE version_id = :id ORDER BY prefix, period"
        ),
        {"id": version_id},
    )
    # a deck repeats few slot shapes (prices x increments): each distinct text is parsed once.
    # The columns are in the order of Rate's fields.
    parsed: dict[str, tuple[Slot, ...]] = {}
    out = []
    for r in rows:
        shape = parsed.get(r.slots)
        if shape is None:
            shape = parsed[r.slots] = tuple(
                Slot(int(s["start"]), Decimal(s["price"]), int(s["unit"]), int(s["increment"]))
                for s in json.loads(r.slots)
            )
        out.append(Rate(r[0], r[1], shape, *r[3:]))
    rates = tuple(out)
    return DeckVersion(
        deck=deck, effective_from=head.effective_from, rates=rates, periods=load_periods(conn, version_id)
    )


def load_periods(conn: Connection, version_id: int) -> tuple[Period, ...]:
    """A version's periods, by name (windows by start, then weekdays)."""
    rows = conn.execute(
        text(
            "SELECT period, weekdays, start_time::text AS start, end_time::text AS end FROM rate_periods "
            "WHERE version_id = :id ORDER BY period, start_time, weekdays"
        ),
        {"id": version_id},
    )
    return period_rules.from_rows(rows)


# -- diff -------------------------------------------------------------------------------------------


@dataclass
class Diff:
    """What changed from one version to the next, by prefix (and period, for rates by period). A
    rate is up (down) when its first slot's price rose (fell), or that price is the same and its
    connect fee rose (fell); other differences (increments, tiers, minimums, names) are
    ``changed``. ``periods``: the new version's periods, when they differ from the old one's."""

    added: list[Rate] = field(default_factory=list)
    removed: list[Rate] = field(default_factory=list)
    up: list[tuple[Rate, Rate]] = field(default_factory=list)
    down: list[tuple[Rate, Rate]] = field(default_factory=list)
    changed: list[tuple[Rate, Rate]] = field(default_factory=list)
    unchanged: int = 0
    periods: tuple[Period, ...] | None = None

    def counts(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.removed)} removed, {len(self.up)} price up, "
            f"{len(self.down)} price down, {len(self.changed)} other change(s), {self.unchanged} unchanged"
        )

    def render(self, first: int = 5) -> str:
        """The counts, then the first ``first`` prefixes of each kind."""
        lines = [self.counts()]
        if self.periods is not None:
            shown = "; ".join(period_rules.describe(p) for p in self.periods)
            lines.append(f"  periods  {shown or 'none (one price at any time)'}")
        for label, items in (("added", self.added), ("removed", self.removed)):
            lines += [f"  {label:<8} {r.prefix:<12} {describe(r)}" for r in items[:first]]
            if len(items) > first:
                lines.append(f"  {label:<8} ... {len(items) - first} more")
        for label, pairs in (("up", self.up), ("down", self.down), ("changed", self.changed)):
            lines += [f"  {label:<8} {o.prefix:<12} {describe(o)} -> {describe(n)}" for o, n in pairs[:first]]
            if len(pairs) > first:
                lines.append(f"  {label:<8} ... {len(pairs) - first} more")
        return "\n".join(lines)


def describe(rate: Rate) -> str:
    """A rate in a few words: ``United Kingdom 0.0100/60s 60/60 +0.2``."""
    first = rate.slots[0]
    steps = (
        "/".join(str(s.increment) for s in rate.slots[:2])
        if len(rate.slots) > 1
        else f"{first.increment}/{first.increment}"
    )
    fee = f" +{rate.connect_fee}" if rate.connect_fee else ""
    tiers = f" ({len(rate.slots)} slots)" if len(rate.slots) > 2 else ""
    name = f"{rate.destination} " if rate.destination else ""
    period = f" [{rate.period}]" if rate.period else ""
    return f"{name}{first.price}/{first.unit}s {steps}{fee}{tiers}{period}"


def _price(rate: Rate) -> Decimal:
    """The first slot's price per minute (so decks priced per second and per minute compare)."""
    first = rate.slots[0]
    return first.price * 60 / first.unit


def diff(old: DeckVersion | None, new: DeckVersion) -> Diff:
    result = Diff()
    before = {(r.prefix, r.period): r for r in old.rates} if old else {}
    after = {(r.prefix, r.period): r for r in new.rates}
    if {p.name: set(p.windows) for p in (old.periods if old else ())} != {p.name: set(p.windows) for p in new.periods}:
        result.periods = new.periods
    for prefix in sorted(after):
        n = after[prefix]
        o = before.get(prefix)
        if o is None:
            result.added.append(n)
            continue
        po, pn = _price(o), _price(n)
        if pn > po or (pn == po and n.connect_fee > o.connect_fee):
            result.up.append((o, n))
        elif pn < po or (pn == po and n.connect_fee < o.connect_fee):
            result.down.append((o, n))
        elif o != n:
            result.changed.append((o, n))
        else:
            result.unchanged += 1
    result.removed = [before[p] for p in sorted(before) if p not in after]
    return result
