"""Rerating (``cdrflow bill rerate``): rate a closed period's calls again, as a new billrun version.

:func:`rerate` for a kind and period, optionally one account or one carrier, optionally a deck
version to use instead of the one in force:

1. takes the billrun's advisory lock for (kind, period, scope) (scope: the account, or ``all``);
2. selects the period's **current** charges in scope (both sides; the charges written by the
   closed billruns of that kind and period, whatever their scope), locking them (``FOR UPDATE``:
   two reratings never replace the same charge twice). Unrated charges are among them: a
   rerating retries them (a deck imported since, an account's deck fixed since);
3. rates each call again, exactly as a billrun does (:class:`cdrflow.billing.charging.Rater`):
   the account's *current* sell deck (the carrier's current buy deck for ``buy`` charges), the
   version in force at the call's start, or ``--deck-version`` for calls on that version's deck;
4. in one transaction: turns the old charges' ``current`` off (the only update; their money is
   never touched), appends the new charges (``replaces`` = the old charge's id) under a new
   billrun (the next ``version`` of (kind, period, scope), ``rerate`` saying what was asked),
   writes its invoice lines and totals, appends the billing feed's reversals and new records
   (:mod:`cdrflow.billing.feed`), and commits. The old billruns, their charges and invoices stay.

Returns the change per account (old total, new total, difference, per currency) and the
destinations the new billrun sells below cost. Totals after a rerating are the totals of rating
the same calls from scratch with the same decks (tests/test_feed_and_rerate.py).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text

from cdrflow.billing import decks, feed
from cdrflow.billing.billrun import (
    BATCH,
    BillingError,
    Billrun,
    BillrunBusy,
    _close,
    _lock_key,
    _open,
    mark_failed,
    period_of,
)
from cdrflow.billing.charging import Decks, Rater, copy_line, hold_references, move_staged, stage

_OLD = """
SELECT ch.id, ch.call_id, ch.carrier, ch.record_key, ch.start_time, ch.account_id, ch.side,
       coalesce(c.callee_e164, c.callee_number) AS number, c.billing_seconds,
       a.sell_deck, r.config ->> 'buy_deck' AS buy_deck
FROM charges ch
JOIN billruns b ON b.id = ch.billrun_id
LEFT JOIN calls c ON c.carrier = ch.carrier AND c.record_key = ch.record_key AND c.start_time = ch.start_time
LEFT JOIN accounts a ON a.account_id = ch.account_id
LEFT JOIN carriers r ON r.code = ch.carrier
WHERE ch.current AND b.kind = :kind AND b.period_start = :ps AND b.status = 'closed'
  AND (CAST(:account AS text) IS NULL OR ch.account_id = :account)
  AND (CAST(:carrier AS text) IS NULL OR ch.carrier = :carrier)
ORDER BY ch.id
FOR UPDATE OF ch
"""

_MOVE = move_staged("rerate_staging")

_TOTALS = """
SELECT coalesce(account_id, '') AS account_id, currency, sum(cost) AS amount, count(*) AS calls
FROM charges WHERE {where} AND side = 'sell' AND unrated_reason IS NULL
GROUP BY 1, 2
"""


@dataclass
class AccountChange:
    account_id: str
    currency: str
    old: Decimal
    new: Decimal

    @property
    def difference(self) -> Decimal:
        return self.new - self.old


@dataclass
class Rerating:
    billrun: Billrun
    replaced: int
    changes: list[AccountChange] = field(default_factory=list)
    below_cost: list[dict[str, Any]] = field(default_factory=list)


class _Pinned(Decks):
    """The deck versions in force, except ``pinned`` (deck, version id) for calls on that deck."""

    def __init__(self, conn: Connection, pinned: tuple[str, int] | None) -> None:
        super().__init__(conn)
        self.pinned = pinned

    def in_force(self, deck: str, at: datetime) -> int | None:
        if self.pinned is not None and deck == self.pinned[0]:
            return self.pinned[1]
        return super().in_force(deck, at)


def below_cost(conn: Connection, billrun_id: int) -> list[dict[str, Any]]:
    """The destinations billrun ``billrun_id`` sold below cost (view ``below_cost_destinations``)."""
    rows = conn.execute(
        text(
            "SELECT destination, call_type, currency, calls, sell_total, buy_total, margin, calls_below_cost "
            "FROM below_cost_destinations WHERE billrun_id = :id ORDER BY margin, destination"
        ),
        {"id": billrun_id},
    ).mappings()
    return [dict(r) for r in rows]


def rerate(
    engine: Engine,
    kind: str,
    period: str | date,
    account: str | None = None,
    carrier: str | None = None,
    deck_version: int | None = None,
) -> Rerating:
    """Re-rate the current charges of a period in scope as a new billrun version; see the module."""
    if account is not None and carrier is not None:
        raise BillingError("rerate one account or one carrier, not both")
    start, end = period_of(kind, period)
    scope = account or "all"
    key = _lock_key(kind, start, scope)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as control:
        if not control.execute(text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), {"k": key}).scalar():
            raise BillrunBusy(f"the {kind} billrun of {start} for {scope} is running in another process")
        try:
            return _rerate_locked(engine, control, kind, start, end, scope, account, carrier, deck_version)
        finally:
            control.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": key})


def _rerate_locked(
    engine: Engine,
    control: Connection,
    kind: str,
    start: date,
    end: date,
    scope: str,
    account: str | None,
    carrier: str | None,
    deck_version: int | None,
) -> Rerating:
    billrun_id: int | None = None
    try:
        with engine.begin() as conn:
            pinned = None
            if deck_version is not None:
                found = [v for v in decks.versions(conn) if v.id == deck_version]
                if not found:
                    raise BillingError(f"unknown deck version {deck_version}: see cdrflow rates list")
                pinned = (found[0].deck, deck_version)
            book = _Pinned(conn, pinned)
            params = {"kind": kind, "ps": start, "account": account, "carrier": carrier}
            stream = conn.execute(text(_OLD), params, execution_options={"stream_results": True})
            batches = stream.partitions(BATCH)
            batch = next(batches, [])
            if not batch:
                what = f" of account {account}" if account else f" of carrier {carrier}" if carrier else ""
                raise BillingError(
                    f"nothing to rerate: the {kind} period {start} has no closed billrun with charges{what} "
                    f"(cdrflow bill run --kind {kind} --period ... first)"
                )
            billrun_id, _version = _open(control, kind, start, end, scope)
            raw = conn.connection.driver_connection
            assert raw is not None
            copy_staging = stage(conn, "rerate_staging")
            rater = Rater(book)
            while batch:
                buf = io.StringIO()
                for old in batch:
                    deck = old.sell_deck if old.side == "sell" else old.buy_deck
                    head = copy_line(
                        billrun_id, old.call_id, old.carrier, old.record_key, old.start_time, old.account_id
                    )
                    row = rater.rate(deck, old.start_time, old.number, old.billing_seconds)
                    buf.write(f"{head}\t{old.side}\t{row}\t{old.id}\n")
                buf.seek(0)
                with raw.cursor() as cur:
                    cur.copy_expert(copy_staging, buf)
                batch = next(batches, [])
            replaced = conn.execute(
                text("UPDATE charges SET current = false WHERE id IN (SELECT replaces FROM rerate_staging)")
            ).rowcount
            conn.execute(text(_MOVE))
            hold_references(conn, billrun_id, "rerate_staging")
            old_totals = conn.execute(text(_TOTALS.format(where="id IN (SELECT replaces FROM rerate_staging)"))).all()
            result = _close(conn, billrun_id, [])
            new_totals = conn.execute(text(_TOTALS.format(where="billrun_id = :id")), {"id": billrun_id}).all()
            asked = {"account": account, "carrier": carrier, "deck_version": deck_version, "replaced": replaced}
            conn.execute(
                text("UPDATE billruns SET rerate = CAST(:r AS jsonb) WHERE id = :id"),
                {"id": billrun_id, "r": json.dumps(asked)},
            )
            changes: dict[tuple[str, str], AccountChange] = {}
            for r in old_totals:
                changes[(r.account_id, r.currency)] = AccountChange(r.account_id, r.currency, r.amount, Decimal(0))
            for r in new_totals:
                got = changes.setdefault(
                    (r.account_id, r.currency), AccountChange(r.account_id, r.currency, Decimal(0), Decimal(0))
                )
                got.new = r.amount
            cheap = below_cost(conn, billrun_id)
            # last, right before COMMIT: feed ids in commit order (see billing/feed.py)
            feed.append(conn, billrun_id)
        return Rerating(result, replaced, [changes[k] for k in sorted(changes)], cheap)
    except Exception as exc:
        if billrun_id is not None:
            mark_failed(control, billrun_id, exc)
        raise
