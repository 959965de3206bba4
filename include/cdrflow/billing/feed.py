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

:func:`read` / :func:`write_csv` serve ``cdrflow feed --from-id N [--limit L]`` (``fromid``
inclusive, ids ascending; the API's ``/billing/feed`` route is the same query).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

from sqlalchemy import Connection, text

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

_FIELDS = (
    "billrun_id, account_id, billing_group, billing_period, start_time, local_time, seconds, billed_seconds, "
    '"from", "to", type, sub_type, description, destination, cost, currency'
)

_REVERSALS = f"""
INSERT INTO billing_feed (id, record, correction_of, charge_id, {_FIELDS})
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

_CHARGES = f"""
INSERT INTO billing_feed (id, record, correction_of, charge_id, {_FIELDS})
SELECT nextval('billing_feed_id_seq'), 'charge', x.correction_of, x.charge_id, {_FIELDS}
FROM (
    SELECT n.id AS charge_id, rf.id AS correction_of, n.billrun_id, n.account_id, a.billing_group,
           CASE b.kind WHEN 'daily' THEN to_char(b.period_start, 'YYYY-MM-DD')
                ELSE to_char(b.period_start, 'YYYY-MM') END AS billing_period,
           n.start_time, n.start_time AT TIME ZONE coalesce(a.timezone, 'UTC') AS local_time,
           n.billing_seconds AS seconds, n.billed_seconds,
           coalesce(c.caller_e164, c.caller_number) AS "from", coalesce(c.callee_e164, c.callee_number) AS "to",
           t.type, t.sub_type, ct.description, n.destination, n.cost, n.currency
    FROM charges n
    JOIN billruns b ON b.id = n.billrun_id
    LEFT JOIN accounts a ON a.account_id = n.account_id
    LEFT JOIN calls c ON c.carrier = n.carrier AND c.record_key = n.record_key AND c.start_time = n.start_time
    LEFT JOIN billing_feed rf ON rf.charge_id = n.replaces AND rf.record = 'charge'
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


def append(conn: Connection, billrun_id: int) -> int:
    """Append the feed records of billrun ``billrun_id`` (its rated sell charges, and reversals of
    the records its charges replaced); call it last in the billrun's transaction. Returns how many."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": LOCK})
    # separate statements after the lock: each takes a snapshot that sees every earlier holder's rows
    n = conn.execute(text(_REVERSALS), {"id": billrun_id}).rowcount
    n += conn.execute(text(_CHARGES), {"id": billrun_id}).rowcount
    return n


def read(
    conn: Connection, from_id: int = 0, limit: int | None = None, account: str | None = None
) -> list[dict[str, Any]]:
    """Feed records with ``id >= from_id`` (inclusive, as seed 004's ``fromid``), ids ascending."""
    rows = conn.execute(
        text(
            "SELECT id, record, correction_of, to_char(local_time, 'YYYY-MM-DD') AS date, "
            "to_char(local_time, 'YYYY-MM-DD HH24:MI:SS') AS datetime, billing_period, billing_group, "
            'account_id AS account, seconds, billed_seconds, "from", "to", type, sub_type, description, '
            "destination, cost, currency, billrun_id AS billrun FROM billing_feed "
            "WHERE id >= :f AND (CAST(:a AS text) IS NULL OR account_id = :a) ORDER BY id LIMIT :l"
        ),
        {"f": from_id, "l": limit, "a": account},
    ).mappings()
    return [dict(r) for r in rows]


def write_csv(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """The records as CSV with the header :data:`COLUMNS`; returns how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for r in records:
        writer.writerow(["" if r[c] is None else r[c] for c in COLUMNS])
        n += 1
    return n
