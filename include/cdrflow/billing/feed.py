"""The billing feed (seed 004): one record per charged call, ids in commit order.

:func:`append` is the last step of a billrun's (and a rerating's) transaction, right before its
COMMIT. It takes the transaction-level advisory lock ``cdrflow.billing_feed``
(``pg_advisory_xact_lock``) and only then draws the records' ids from ``billing_feed_id_seq``.
Why that gives ids in commit order, which a sequence alone does not:

- a sequence hands out ids when a row is inserted; a transaction that took ids 1-100 and commits
  after one that took 101-200 shows a client that collected up to 200 new records below it;
- here ids are drawn only while holding the lock, and the lock is released when the transaction
  ends, after its commit is visible to every new snapshot (PostgreSQL releases locks after it
  marks the transaction committed). The next holder therefore draws higher ids strictly after
  every earlier holder's records are visible: the order of the ids is the order of the commits;
- a transaction that rolls back after drawing ids leaves a gap, never a record below an id a
  client collected. Only this last step is serialised across billruns (rating, writing charges
  and invoice lines run concurrently); it costs one INSERT ... SELECT of the billrun's charges.

Rerating appends, it never rewrites a collected record: for each re-rated call whose replaced
charge had a record, a ``reversal`` (cost negated, ``correction_of`` = that record's id), then
the new ``charge`` record (``correction_of`` = the same id). Summing the ``cost`` of every record
collected gives the current total; keeping the last ``charge`` record per call gives each call's
current cost.

:func:`records` (a server-side cursor) and :func:`csv_lines` serve both ``cdrflow feed --from-id N
[--limit L]`` and the API's ``GET /billing/feed`` (``fromid`` inclusive, ids ascending): one query,
one CSV shape. :class:`FeedFilter` holds the optional narrowing (account, the search criteria of
seed 004 §1 that the API offers as named extensions), each a bound parameter of a SQLAlchemy Core
select, never SQL text made from a value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Integer,
    Numeric,
    Select,
    Text,
    column,
    func,
    select,
    table,
    text,
)

from cdrflow.billing.charging import CHARGED

LOCK = "cdrflow.billing_feed"

# the feed's CSV header (seed 004 names no columns; these are cdrflow's, see README "Billing feed")
COLUMNS = (
    "id",
    "record",
    "correction_of",
    "date",
    "datetime",
    "billing_period",
    "billing_group",
    "account",
    "seconds",
    "billed_seconds",
    "from",
    "to",
    "type",
    "sub_type",
    "description",
    "destination",
    "cost",
    "currency",
    "billrun",
)

_REVERSALS = """
INSERT INTO billing_feed (id, record, correction_of, charge_id, billrun_id, account_id, billing_group, billing_period,
                          start_time, local_time, seconds, billed_seconds, "from", "to", type, sub_type, description,
                          destination, cost, currency)
SELECT nextval('billing_feed_id_seq'), 'reversal', x.id, x.charge_id, :id, x.account_id, x.billing_group,
       x.billing_period, x.start_time, x.local_time, x.seconds, x.billed_seconds, x."from", x."to", x.type,
       x.sub_type, x.description, x.destination, -x.cost, x.currency
FROM (
    SELECT f.* FROM charges n
    JOIN billing_feed f ON f.charge_id = n.replaces AND f.record = 'charge'
    WHERE n.billrun_id = :id AND n.side = 'sell' AND n.replaces IS NOT NULL
    ORDER BY f.id
) x
"""

_CHARGES = """
INSERT INTO billing_feed (id, record, correction_of, charge_id, billrun_id, account_id, billing_group, billing_period,
                          start_time, local_time, seconds, billed_seconds, "from", "to", type, sub_type, description,
                          destination, cost, currency)
SELECT nextval('billing_feed_id_seq'), 'charge', x.correction_of, x.charge_id, x.billrun_id, x.account_id,
       x.billing_group, x.billing_period, x.start_time, x.local_time, x.seconds, x.billed_seconds, x."from", x."to",
       x.type, x.sub_type, x.description, x.destination, x.cost, x.currency
FROM (
    SELECT n.id AS charge_id, {correction_of} AS correction_of, n.billrun_id, n.account_id, a.billing_group,
           CASE b.kind WHEN 'daily' THEN to_char(b.period_start, 'YYYY-MM-DD')
                ELSE to_char(b.period_start, 'YYYY-MM') END AS billing_period,
           n.start_time, n.start_time AT TIME ZONE coalesce(a.timezone, 'UTC') AS local_time,
           n.billing_seconds AS seconds, n.billed_seconds,
           {numbers},
           t.type, t.sub_type, ct.description, n.destination, n.cost, n.currency
    FROM {source} n
    JOIN billruns b ON b.id = n.billrun_id
    LEFT JOIN accounts a ON a.account_id = n.account_id
    {calls}
    {corrected}
    CROSS JOIN LATERAL (
        SELECT CASE WHEN n.call_type IN ('MG', 'M3') THEN 'M' ELSE n.call_type END AS type,
               CASE WHEN n.call_type IN ('MG', 'M3') THEN n.call_type
                    WHEN EXISTS (SELECT 1 FROM billing_call_types p
                                 WHERE p.type = n.call_type AND p.sub_type = n.call_sub_type) THEN n.call_sub_type
                    ELSE n.call_type END AS sub_type
    ) t
    LEFT JOIN billing_call_types ct ON ct.type = t.type AND ct.sub_type = t.sub_type
    WHERE n.billrun_id = :id AND n.side = 'sell' AND n.unrated_reason IS NULL
    ORDER BY n.id
) x
"""


# a rerating's charges, read from ``charges`` (they may replace a charge with a record), the
# numbers from their calls
_FROM_CHARGES = _CHARGES.format(
    source="charges",
    correction_of="rf.id",
    numbers='coalesce(c.caller_e164, c.caller_number) AS "from", coalesce(c.callee_e164, c.callee_number) AS "to"',
    calls="LEFT JOIN calls c ON c.carrier = n.carrier AND c.record_key = n.record_key AND c.start_time = n.start_time",
    corrected="LEFT JOIN billing_feed rf ON rf.charge_id = n.replaces AND rf.record = 'charge'",
)
# a billrun's, read from the rows it kept in charging.CHARGED (the same rows; a billrun's charges
# are first charges: none replaces another, so no reversal and no correction_of), with the
# numbers its legs query read (the same expressions), so without joining calls again (the join
# was 0.2 s of the statement's 1.2 s at 200,000 records)
_FROM_CHARGED = _CHARGES.format(
    source=CHARGED,
    correction_of="CAST(NULL AS bigint)",
    numbers='n.caller AS "from", n.callee AS "to"',
    calls="",
    corrected="",
)


def append(conn: Connection, billrun_id: int) -> int:
    """Append the feed records of billrun ``billrun_id`` (its rated sell charges, and reversals of
    the records its charges replaced); call it last in the billrun's transaction. Returns how many.

    A billrun keeps the charges it wrote in the temporary table ``charging.CHARGED``: when this
    transaction has it, the records are made from it (a billrun's charges replace none)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": LOCK})
    kept = conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": "pg_temp." + CHARGED}).scalar()
    # separate statements after the lock: each takes a snapshot that sees every earlier holder's rows
    if kept:
        return conn.execute(text(_FROM_CHARGED), {"id": billrun_id}).rowcount
    n = conn.execute(text(_REVERSALS), {"id": billrun_id}).rowcount
    n += conn.execute(text(_FROM_CHARGES), {"id": billrun_id}).rowcount
    return n


_feed = table(
    "billing_feed",
    column("id", BigInteger),
    column("record", Text),
    column("correction_of", BigInteger),
    column("billrun_id", BigInteger),
    column("account_id", Text),
    column("billing_group", Text),
    column("billing_period", Text),
    column("local_time", DateTime),
    column("seconds", Integer),
    column("billed_seconds", Integer),
    column("from", Text),
    column("to", Text),
    column("type", Text),
    column("sub_type", Text),
    column("description", Text),
    column("destination", Text),
    column("cost", Numeric),
    column("currency", Text),
)


@dataclass(frozen=True)
class FeedFilter:
    """Optional narrowing of the feed; None leaves a criterion out. ``account`` is the feed's login
    (or an operator's choice); the rest are seed 004's search criteria (§1: date, billing period,
    billing group, seconds, to, from, type), named by cdrflow."""

    account: str | None = None
    billing_period: str | None = None  # exactly: 2026-11-01 (daily) or 2026-11 (monthly)
    billing_group: str | None = None
    date_from: date | None = None  # the call's local date (column ``date``), inclusive
    date_to: date | None = None  # inclusive
    min_seconds: int | None = None  # billing seconds at least
    to: str | None = None  # callee starts with this (a leading + ignored on both sides)
    from_: str | None = None  # caller starts with this
    type: str | None = None  # seed 004 Type, exactly (0, 8, 9 are codes, not numbers)


def _starts_with(col: Any, prefix: str) -> Any:
    return func.starts_with(func.ltrim(col, "+"), prefix.lstrip("+"))


def select_records(from_id: int = 0, limit: int | None = None, where: FeedFilter | None = None) -> Select:
    """The feed's query: records with ``id >= from_id`` (inclusive, as seed 004's ``fromid``),
    ids ascending, at most ``limit``; every value a bound parameter."""
    f = _feed.c
    query = select(
        f.id,
        f.record,
        f.correction_of,
        func.to_char(f.local_time, "YYYY-MM-DD").label("date"),
        func.to_char(f.local_time, "YYYY-MM-DD HH24:MI:SS").label("datetime"),
        f.billing_period,
        f.billing_group,
        f.account_id.label("account"),
        f.seconds,
        f.billed_seconds,
        f["from"],
        f.to,
        f.type,
        f.sub_type,
        f.description,
        f.destination,
        f.cost,
        f.currency,
        f.billrun_id.label("billrun"),
    ).where(f.id >= from_id)
    w = where or FeedFilter()
    if w.account is not None:
        query = query.where(f.account_id == w.account)
    if w.billing_period is not None:
        query = query.where(f.billing_period == w.billing_period)
    if w.billing_group is not None:
        query = query.where(f.billing_group == w.billing_group)
    if w.date_from is not None:
        query = query.where(f.local_time >= w.date_from)
    if w.date_to is not None:
        query = query.where(f.local_time < w.date_to + timedelta(days=1))
    if w.min_seconds is not None:
        query = query.where(f.seconds >= w.min_seconds)
    if w.to is not None:
        query = query.where(_starts_with(f.to, w.to))
    if w.from_ is not None:
        query = query.where(_starts_with(f["from"], w.from_))
    if w.type is not None:
        query = query.where(f.type == w.type)
    query = query.order_by(f.id)
    return query.limit(limit) if limit is not None else query


def records(
    conn: Connection, from_id: int = 0, limit: int | None = None, where: FeedFilter | None = None
) -> Iterator[dict[str, Any]]:
    """The feed's records one by one, from a server-side cursor (memory stays flat however many).

    The query runs now (an error raises here, before a caller has sent anything); the rows are
    read as the iterator is consumed, so ``conn`` must stay open, in its transaction, until then."""
    result = conn.execute(
        select_records(from_id, limit, where), execution_options={"stream_results": True, "max_row_buffer": 1000}
    )
    return _rows(result)


def _rows(result: Any) -> Iterator[dict[str, Any]]:
    with result:
        for row in result.mappings():
            yield dict(row)


def read(
    conn: Connection, from_id: int = 0, limit: int | None = None, account: str | None = None
) -> list[dict[str, Any]]:
    """Feed records with ``id >= from_id`` (inclusive, as seed 004's ``fromid``), ids ascending."""
    return list(records(conn, from_id, limit, FeedFilter(account=account)))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def csv_lines(rows: Iterable[dict[str, Any]], cell: Callable[[str], str] | None = None) -> Iterator[str]:
    """The CSV text of the feed, one line at a time: the header :data:`COLUMNS`, then a line per
    record. ``cell`` rewrites each value (the API neutralises spreadsheet formulas with it)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")

    def line(values: Iterable[str]) -> str:
        buf.seek(0)
        buf.truncate()
        writer.writerow(values)
        return buf.getvalue()

    yield line(COLUMNS)
    for r in rows:
        values = (_text(r[c]) for c in COLUMNS)
        yield line([cell(v) for v in values] if cell else list(values))


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """The records as CSV with the header :data:`COLUMNS`; returns how many."""
    n = -1
    for text_line in csv_lines(rows):
        out.write(text_line)
        n += 1
    return n
