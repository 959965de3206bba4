"""Closing a billrun: its invoice lines, counts and totals, written to ``billruns``.

Read from the billrun's own charges: a billrun reads the rows it kept in
:data:`charging.CHARGED` (the same rows as in ``charges``, without finding them again), a
rerating reads ``charges``. The statements are made once per source, from that closed set of
table names (never user text).
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from sqlalchemy import Connection, text

from cdrflow.billing.charging import CHARGED

log = logging.getLogger(__name__)

# {source}: one of the table names below, filled in once at import.
# The invoice lines go in in the order of their primary key, sorted byte-wise (COLLATE "C": the
# order of a C.UTF-8 database, and a cheap sort in any): a day of 1,000,000 calls over a deck of
# 50,000 destinations has 670,000 lines, and inserting them in the hash aggregate's order, every
# one at a random place of the key, took 5.3-6.0 s, sorted 3.9-4.8 s with the sort.
_TEMPLATES = {
    "invoice": """
INSERT INTO invoice_lines (billrun_id, account_id, currency, destination, call_type, calls, billed_seconds, amount)
SELECT billrun_id, coalesce(account_id, ''), currency, coalesce(destination, ''), coalesce(call_type, ''),
       count(*), coalesce(sum(billed_seconds), 0), sum(cost)
FROM {source}
WHERE billrun_id = :id AND side = 'sell' AND unrated_reason IS NULL
GROUP BY 1, 2, 3, 4, 5
ORDER BY coalesce(account_id, '') COLLATE "C", currency COLLATE "C", coalesce(destination, '') COLLATE "C",
         coalesce(call_type, '') COLLATE "C"
""",
    "counts": "SELECT side, unrated_reason, count(*) AS n FROM {source} WHERE billrun_id = :id GROUP BY side, unrated_reason",
    "calls": "SELECT count(*) FROM (SELECT DISTINCT carrier, record_key, start_time FROM {source} WHERE billrun_id = :id) d",
    "buy_totals": """
SELECT currency, sum(cost) AS amount FROM {source}
WHERE billrun_id = :id AND side = 'buy' AND unrated_reason IS NULL
GROUP BY currency
""",
}
_STATEMENTS = {
    source: {name: text(template.format(source=source)) for name, template in _TEMPLATES.items()}
    for source in ("charges", CHARGED)
}


def close(conn: Connection, billrun_id: int, files: list[int], source: str = "charges") -> None:
    """Write the invoice lines of billrun ``billrun_id`` from ``source`` (``charges`` or
    :data:`charging.CHARGED`), its counts and totals, mark it closed and set it on the ``files``
    it covered."""
    statements = _STATEMENTS[source]
    conn.execute(statements["invoice"], {"id": billrun_id})
    counts = conn.execute(statements["counts"], {"id": billrun_id}).all()
    calls = conn.execute(statements["calls"], {"id": billrun_id}).scalar_one()
    totals = {
        r.currency: r.amount
        for r in conn.execute(
            text("SELECT currency, sum(amount) AS amount FROM invoice_lines WHERE billrun_id = :id GROUP BY currency"),
            {"id": billrun_id},
        )
    }
    buy_totals = {r.currency: r.amount for r in conn.execute(statements["buy_totals"], {"id": billrun_id})}
    rated = dict.fromkeys(("sell", "buy"), 0)
    unrated: dict[str, Counter] = {"sell": Counter(), "buy": Counter()}
    for r in counts:
        if r.unrated_reason is None:
            rated[r.side] += r.n
        else:
            unrated[r.side][r.unrated_reason] += r.n
    covered = 0
    if files:
        covered = conn.execute(
            text(
                "UPDATE cdr_files SET billrun = CAST(:id AS text) "
                "WHERE id = ANY(:files) AND billrun IS DISTINCT FROM CAST(:id AS text)"
            ),
            {"id": billrun_id, "files": files},
        ).rowcount
    conn.execute(
        text(
            "UPDATE billruns SET status = 'closed', finished_at = now(), calls = :calls, rated = :rated, "
            "unrated = CAST(:unrated AS jsonb), totals = CAST(:totals AS jsonb), buy_rated = :buy_rated, "
            "buy_unrated = CAST(:buy_unrated AS jsonb), buy_totals = CAST(:buy_totals AS jsonb) WHERE id = :id"
        ),
        {
            "id": billrun_id,
            "calls": calls,
            "rated": rated["sell"],
            "unrated": json.dumps(dict(unrated["sell"])),
            "totals": json.dumps({c: format(a, "f") for c, a in totals.items()}),
            "buy_rated": rated["buy"],
            "buy_unrated": json.dumps(dict(unrated["buy"])),
            "buy_totals": json.dumps({c: format(a, "f") for c, a in buy_totals.items()}),
        },
    )
    log.info("billrun %s: billrun set on %d of the %d file(s) it covered", billrun_id, covered, len(files))
