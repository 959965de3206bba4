"""Legs into calls: a leg that another leg names as its other leg joins that leg's call.

Each parser gives a leg the call it can see in the record itself (``call_key``: Asterisk
``linkedid``, Kazoo ``interaction_id``, a mapping's ``call:``, else the leg's own call id). Some
formats tie their legs together only by naming each other: the FreeSWITCH A-leg names its B-leg
in ``bleg_uuid`` (the B-leg names no one), a Kazoo A-leg and B-leg name each other in
``other_leg_call_id``. Those legs may arrive in one file, or in files loaded a day apart, in
either order; so the join is made in the loading transaction of every file, in both
directions: the legs this file's legs name, and the legs that name this file's legs.

The rule, the same whatever arrived first (so re-running or reprocessing a file gives the same
keys): in a pair where leg N names leg M (N.other_leg_call_id = M.record_key, which is the call id
for FreeSWITCH and Kazoo), M takes N's call key. When both name each other (Kazoo), the leg that
started first (then the ``inbound`` one, then the lower record key) keeps its key and the other
takes it. Chains (a transfer: A names B, B names C) are followed for up to :data:`HOPS` rounds;
the usual pair takes one.
Legs more than :data:`WINDOW` apart in start time are not paired (lookups stay within one or two
month partitions).

Cost: a file of a format without an other-leg column (Asterisk, Telnyx, the billing feed, most
mappings) runs no query at all. Otherwise: one advisory lock per carrier (two files with the two
legs of a call, loading at the same moment, would each miss the other: the second waits here for
the first to commit, then sees its legs), and a few statements of primary-key probes (the legs
named) and probes of the partial index ``calls_other_leg_idx`` (the legs naming; only rows with an
other leg are in it, so it costs other formats' loads nothing), see ``sql/010_calls_by_call.sql``.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from cdrflow.config.carrier_file import Carrier
from cdrflow.formats import get_parser
from cdrflow.loading.chunks import options_for

WINDOW = "2 days"
HOPS = 4

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('cdrflow.legs:' || :carrier, 0))")

# One round: pairs touching the file's legs, the key each named leg takes, the update.
_JOIN = text("""
WITH mine AS (
    SELECT record_key, start_time, other_leg_call_id, direction,
           coalesce(call_key, carrier_call_id) AS call_key
    FROM calls WHERE carrier = :carrier AND file_id = :file
), pairs AS (
    SELECT n.record_key AS n_key, n.start_time AS n_start, n.direction AS n_dir, n.call_key AS n_call,
           n.other_leg_call_id AS n_other,
           m.record_key AS m_key, m.start_time AS m_start, m.direction AS m_dir, m.call_key AS m_call,
           m.other_leg_call_id AS m_other
    FROM mine n CROSS JOIN LATERAL (
        SELECT c.record_key, c.start_time, c.direction, coalesce(c.call_key, c.carrier_call_id) AS call_key,
               c.other_leg_call_id
        FROM calls c
        WHERE c.carrier = :carrier AND c.record_key = n.other_leg_call_id
          AND c.start_time BETWEEN n.start_time - CAST(:window AS interval)
                               AND n.start_time + CAST(:window AS interval)
    ) m
    WHERE n.other_leg_call_id IS NOT NULL
    UNION
    SELECT n.record_key, n.start_time, n.direction, n.call_key, n.other_leg_call_id,
           m.record_key, m.start_time, m.direction, m.call_key, m.other_leg_call_id
    FROM mine m CROSS JOIN LATERAL (
        SELECT c.record_key, c.start_time, c.direction, coalesce(c.call_key, c.carrier_call_id) AS call_key,
               c.other_leg_call_id
        FROM calls c
        WHERE c.carrier = :carrier AND c.other_leg_call_id = m.record_key
          AND c.start_time BETWEEN m.start_time - CAST(:window AS interval)
                               AND m.start_time + CAST(:window AS interval)
    ) n
), decided AS (  -- (leaf, root): the leaf takes the root's call key
    SELECT CASE WHEN m_first THEN n_key ELSE m_key END AS leaf_key,
           CASE WHEN m_first THEN n_start ELSE m_start END AS leaf_start,
           CASE WHEN m_first THEN m_call ELSE n_call END AS root_call,
           CASE WHEN m_first THEN m_start ELSE n_start END AS root_start,
           CASE WHEN m_first THEN m_key ELSE n_key END AS root_key
    FROM (
        SELECT p.*,
               p.m_other = p.n_key  -- they name each other: the first leg is the root
               AND (p.m_start, p.m_dir IS DISTINCT FROM 'inbound', p.m_key)
                 < (p.n_start, p.n_dir IS DISTINCT FROM 'inbound', p.n_key) AS m_first
        FROM pairs p
        WHERE p.n_key <> p.m_key
    ) q
), targets AS (  -- a leg named by several: the earliest namer wins
    SELECT DISTINCT ON (leaf_key, leaf_start) leaf_key, leaf_start, root_call, root_key
    FROM decided ORDER BY leaf_key, leaf_start, root_start, root_key
), updated AS (
    UPDATE calls c SET call_key = t.root_call
    FROM targets t
    WHERE c.carrier = :carrier AND c.record_key = t.leaf_key AND c.start_time = t.leaf_start
      AND c.call_key IS DISTINCT FROM t.root_call
    RETURNING c.other_leg_call_id IS NOT NULL AND c.other_leg_call_id <> t.root_key AS onward
)
-- onward: a changed leg names a third leg (a chain), which the next round gives the new key
SELECT count(*) AS changed, count(*) FILTER (WHERE onward) AS onward FROM updated
""")


def names_other_legs(carrier: Carrier, file_type: str) -> bool:
    """Whether ``file_type`` (for ``mapped``: the carrier's mapping) has an other-leg column."""
    parser = get_parser(file_type)
    if getattr(parser, "other_legs", False):
        return True
    mapping = options_for(carrier, file_type).mapping if file_type == "mapped" else getattr(parser, "mapping", None)
    return "other_leg_call_id" in ((mapping or {}).get("columns") or {})


def join_legs(conn: Connection, carrier: Carrier, file_id: int, file_type: str) -> int:
    """Give the legs of ``file_id`` and the legs they pair with their call's key (module
    docstring), inside the file's loading transaction; returns the rows changed. No query at
    all for a format without an other-leg column."""
    if not names_other_legs(carrier, file_type):
        return 0
    conn.execute(_LOCK, {"carrier": carrier.code})
    changed = 0
    for _ in range(HOPS):
        n, onward = conn.execute(_JOIN, {"carrier": carrier.code, "file": file_id, "window": WINDOW}).one()
        changed += n
        if not onward:
            break
    return changed
