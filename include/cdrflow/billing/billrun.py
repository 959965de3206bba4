"""One billing run: rate a period's billable calls that have no current charge, exactly once.

:func:`run_billrun` (``cdrflow bill run``) for a kind (daily | monthly), a period (a day or a
month) and a scope (one account, or every account of that cycle):

1. takes an advisory lock for (kind, period, scope): a second run of the same billrun waits for
   nothing, it is refused while the first runs (:class:`BillrunBusy`);
2. streams (server-side cursor, batches of :data:`BATCH` legs: memory stays flat) the billable
   legs (``cdrflow_call_legs``' ``billable``, in the cheaper form of
   :mod:`cdrflow.billing.billable_legs`; of billable carriers and files) that start in the
   period, which is ``[period_start, period_end)`` at midnight in *each account's* time zone
   (calls of no configured account: in UTC, taken by ``scope = 'all'`` runs only), and whose
   (carrier, record_key, start_time, side) has no current charge;
3. rates each leg on the account's sell deck, the version in force at the call's start in the
   deck's time zone (:func:`cdrflow.billing.rating.rate_number` on ``callee_e164``, else the
   callee's digits), and when the carrier has a ``buy_deck`` on that deck too (side ``buy``).
   Unanswered legs (0 billing seconds) cost 0; a leg that cannot be rated gets a charge row with
   its ``unrated_reason`` and no cost, never nothing;
4. appends the charges while it rates: each batch's charges get their ids from ``charges``' own
   sequence (:class:`charge_writer.IdDrawer`), and a thread (:class:`charge_writer.ChargeWriter`)
   COPYs them straight into ``charges`` on the run's connection, with what the run keeps of them
   (every column but the breakdown, and the call's numbers) into the temporary table
   ``charging.CHARGED``, while the next batch is read on a second connection and rated. A leg
   that another billrun charged after this one read it makes that COPY fail on the partial
   unique index of current charges: the run then rolls back what it wrote and starts again the
   safe way (staged, ``INSERT ... ON CONFLICT DO NOTHING``: a leg charged meanwhile is skipped,
   never charged twice). Then it locks its billrun and the deck versions its charges name
   (:func:`charging.hold_references`: the foreign keys sql/028 replaced, checked once per run),
   writes from ``CHARGED`` the invoice lines (sums of the rounded call costs per account,
   currency, destination and call type), the billrun's counts and totals, ``cdr_files.billrun``
   of the files whose calls it charged, and last the billing feed; all in one transaction, so a
   failed run charges nothing (its row says ``failed`` and why). Its log line says where the
   time went.

Re-running a billrun whose calls all have a current charge writes nothing and returns the last
closed billrun with ``new = False``. A re-run that finds calls with no charge (a late file) is
the next ``version`` of the billrun, an adjustment holding only those calls.

Rating is cached per (deck version, rate, billing seconds): the same call length on the same
rate is computed once per billrun, in integer arithmetic for the common shapes of rate
(:mod:`cdrflow.billing.bulk_rating`), else by ``rate_call``; see :class:`charging.Rater`.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Generator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from time import perf_counter, thread_time
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from cdrflow.billing import closing, feed
from cdrflow.billing.billable_legs import LEGS
from cdrflow.billing.charge_writer import ChargeWriter, IdDrawer, is_conflict
from cdrflow.billing.charging import CHARGED, Decks, Rater, copy_text, hold_references, keep_charged
from cdrflow.config.errors import CdrflowError
from cdrflow.warehouse import accounts as account_rows

log = logging.getLogger(__name__)

KINDS = ("daily", "monthly")
BATCH = 5000
# legs of one call within this margin of the period are read with it, so that the billable flag
# (which compares the legs of a call) is the call's, as call_summaries_between does
MARGIN = timedelta(days=2)


class BillingError(CdrflowError):
    """A billrun that cannot start (bad period, unknown account, currency mismatch)."""


class BillrunBusy(BillingError):
    """The same billrun (kind, period, scope) is running in another process."""


@dataclass
class Billrun:
    id: int
    kind: str
    period_start: date
    period_end: date
    scope: str
    version: int
    status: str
    calls: int = 0
    rated: int = 0
    unrated: dict[str, int] = field(default_factory=dict)
    totals: dict[str, Decimal] = field(default_factory=dict)
    buy_rated: int = 0
    buy_unrated: dict[str, int] = field(default_factory=dict)
    buy_totals: dict[str, Decimal] = field(default_factory=dict)
    files: int = 0
    new: bool = True  # False: nothing was left to charge; this is the last closed run, unchanged
    started_at: datetime | None = None
    finished_at: datetime | None = None


# -- periods --------------------------------------------------------------------------------------


def period_of(kind: str, period: str | date) -> tuple[date, date]:
    """[start, end) of a daily (``2026-11-01``) or monthly (``2026-11``) period, as dates."""
    if kind not in KINDS:
        raise BillingError(f"unknown billrun kind {kind!r}; known: daily or monthly")
    try:
        if kind == "daily":
            day = period if isinstance(period, date) else date.fromisoformat(period)
            return day, day + timedelta(days=1)
        if isinstance(period, date):
            first = period.replace(day=1)
        else:
            year, month = (int(p) for p in period.split("-"))
            first = date(year, month, 1)
    except ValueError:
        wanted = "a day, 2026-11-01" if kind == "daily" else "a month, 2026-11"
        raise BillingError(f"period {period!r}: a {kind} billrun takes {wanted}") from None
    days = calendar.monthrange(first.year, first.month)[1]
    return first, first + timedelta(days=days)


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(zone)).astimezone(UTC)


# -- the run ----------------------------------------------------------------------------------------


def _lock_key(kind: str, start: date, scope: str) -> str:
    return f"cdrflow.billrun:{kind}:{start.isoformat()}:{scope}"


def _scope_accounts(conn: Connection, kind: str, account: str | None, book: Decks) -> list:
    every = account_rows.all_accounts(conn)
    if account is not None:
        chosen = [a for a in every if a.account_id == account]
        if not chosen:
            raise BillingError(f"unknown account {account!r}: not in the accounts table (cdrflow accounts sync)")
        if chosen[0].cycle != kind:
            raise BillingError(
                f"account {account} is billed {chosen[0].cycle}: run a {chosen[0].cycle} billrun for it, not {kind}"
            )
    else:
        chosen = [a for a in every if a.cycle == kind]
    for a in chosen:
        deck = book.deck_of.get(a.sell_deck)
        if deck is not None and deck.currency != a.currency:
            raise BillingError(
                f"account {a.account_id} is invoiced in {a.currency} but its sell deck {a.sell_deck} is in "
                f"{deck.currency}: fix accounts.yaml or the deck (cdrflow converts no currency)"
            )
    return chosen


def run_billrun(engine: Engine, kind: str, period: str | date, account: str | None = None) -> Billrun:
    """Charge the billable calls of one period with no current charge; see the module's doc."""
    start, end = period_of(kind, period)
    scope = account or "all"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as control:
        got = control.execute(
            text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), {"k": _lock_key(kind, start, scope)}
        ).scalar()
        if not got:
            raise BillrunBusy(f"the {kind} billrun of {start} for {scope} is running in another process")
        try:
            return _run_locked(engine, control, kind, start, end, scope, account)
        finally:
            control.execute(
                text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": _lock_key(kind, start, scope)}
            )


@dataclass
class _Opened:
    """The billrun row of a run, once :func:`_open` wrote it (kept across a second try)."""

    id: int | None = None
    version: int = 0


def _run_locked(
    engine: Engine, control: Connection, kind: str, start: date, end: date, scope: str, account: str | None
) -> Billrun:
    opened = _Opened()
    try:
        try:
            return _charge(engine, control, kind, start, end, scope, account, opened, direct=True)
        except Exception as exc:
            if opened.id is None or not is_conflict(exc):
                raise
            # another billrun charged some of these legs after this one read them (its COPY met
            # their current charges): everything of this try rolled back; the legs are read again
            # (those are no longer billable) and written the safe way, which skips any further one
            log.info("billrun %s: legs charged by another billrun meanwhile; rating again", opened.id)
            return _charge(engine, control, kind, start, end, scope, account, opened, direct=False)
    except Exception as exc:
        if opened.id is not None:
            mark_failed(control, opened.id, exc)
        raise


def _without_breakdown(rating: str) -> str:
    """The rating columns of a charge (COPY text, Rater.rate) without its breakdown, the last but
    one of them (escaped: it holds no tab), as charging.CHARGED keeps them."""
    last = rating.rfind("\t")
    return rating[: rating.rfind("\t", 0, last)] + rating[last:]


def _charge(
    engine: Engine,
    control: Connection,
    kind: str,
    start: date,
    end: date,
    scope: str,
    account: str | None,
    opened: _Opened,
    direct: bool,
) -> Billrun:
    # two connections: the legs are read (and the decks loaded, the charge ids drawn) on
    # ``reader`` while the charges are written on ``conn``, the run's transaction, by the writer
    with engine.begin() as conn, engine.connect() as reader, ExitStack() as cleanup:
        # the run's sorts and hashes (legs, invoice lines, feed) over a day of calls stay in
        # memory rather than spilling to disk at PostgreSQL's default 4 MB; no JIT: compiling the
        # feed's and invoice's plans took longer (2 s) than running them
        for c in (conn, reader):
            c.execute(text("SET LOCAL work_mem = '64MB'"))
            c.execute(text("SET LOCAL jit = off"))
        clock = {"began": perf_counter(), "cpu": thread_time()}
        book = Decks(reader)
        chosen = _scope_accounts(reader, kind, account, book)
        since = [_midnight(start, a.timezone) for a in chosen]
        until = [_midnight(end, a.timezone) for a in chosen]
        utc_since, utc_until = _midnight(start, "UTC"), _midnight(end, "UTC")
        everyone = account is None
        if everyone:
            since.append(utc_since)
            until.append(utc_until)
        if not since:  # no account of this cycle: nothing can be in the period
            since, until = [utc_since], [utc_until]
        params = {
            "ps": start,
            "pe": end,
            "kind": kind,
            "account": account,
            "everyone": everyone,
            "since": min(since) - MARGIN,
            "until": max(until) + MARGIN,
            "utc_since": utc_since,
            "utc_until": utc_until,
        }
        batches = _legs(reader, params)
        cleanup.callback(batches.close)  # its cursor closed in the reader's transaction, whatever happens
        first = next(batches, [])
        if not first and opened.id is None:
            prior = _last_closed(conn, kind, start, scope)
            if prior is not None:
                prior.new = False
                return prior
        if opened.id is None:
            opened.id, opened.version = _open(control, kind, start, end, scope)
        billrun_id = opened.id
        keep_charged(conn)
        rater = Rater(book)
        ids = IdDrawer(reader)
        files: set[int] = set()
        seen = 0
        batch = first
        rate = rater.rate
        writer = ChargeWriter(conn, direct)
        try:
            while batch:
                # a charge per side to charge (the last two columns of the legs); their ids first
                charge_id = iter(ids.draw(sum(r[-2] for r in batch) + sum(r[-1] for r in batch))).__next__
                charges: list[str] = []
                kept: list[str] = []
                # the columns of billable_legs.LEGS, in its order
                for (
                    leg_id,
                    carrier,
                    record_key,
                    at,
                    seconds,
                    file_id,
                    account_id,
                    number,
                    caller,
                    sell,
                    buy,
                    to_sell,
                    to_buy,
                ) in batch:
                    files.add(file_id)
                    # the columns of charging.CHARGE_COLUMNS up to the side, and those CHARGED adds
                    head = (
                        f"{billrun_id}\t{leg_id}\t{copy_text(carrier)}\t{copy_text(record_key)}\t{at}\t"
                        f"{copy_text(account_id)}"
                    )
                    numbers = f"{copy_text(caller)}\t{copy_text(number)}\n"
                    if to_sell:
                        rating = rate(sell, at, number, seconds)
                        n = charge_id()
                        charges.append(f"{n}\t{head}\tsell\t{rating}\n")
                        kept.append(f"{n}\t{head}\tsell\t{_without_breakdown(rating)}\t{numbers}")
                    if to_buy:
                        rating = rate(buy, at, number, seconds)
                        n = charge_id()
                        charges.append(f"{n}\t{head}\tbuy\t{rating}\n")
                        kept.append(f"{n}\t{head}\tbuy\t{_without_breakdown(rating)}\t{numbers}")
                writer.put("".join(charges), "".join(kept))
                seen += len(batch)
                batch = next(batches, [])
        finally:
            writer.stop()
        if writer.error is not None:
            raise writer.error
        clock["charged"] = perf_counter()
        clock["cpu"] = thread_time() - clock["cpu"]
        # statistics of the kept rows: without them the planner guesses a few rows and joins
        # the feed's accounts and call types by nested loops over every charge
        conn.execute(text("ANALYZE " + CHARGED))
        hold_references(conn, billrun_id, CHARGED)
        result = _close(conn, billrun_id, sorted(files), source=CHARGED)
        clock["closed"] = perf_counter()
        # last, right before COMMIT: feed ids in commit order (see billing/feed.py)
        feed.append(conn, billrun_id)
        clock["fed"] = perf_counter()
    log.info(
        "billrun %s: %d legs read and rated in %.1f s (%.1f s of Python, %d ratings from the cache; the "
        "charges written meanwhile, %.1f s of writes), counts and invoice lines %.1f s, billing feed %.1f s, "
        "commit %.1f s",
        billrun_id,
        seen,
        clock["charged"] - clock["began"],
        clock["cpu"],
        rater.hits,
        writer.busy,
        clock["closed"] - clock["charged"],
        clock["fed"] - clock["closed"],
        perf_counter() - clock["fed"],
    )
    return result


_LEGS = text(LEGS)


def _legs(reader: Connection, params: dict) -> Generator[list[tuple], None, None]:
    """The billable legs (billable_legs.LEGS) in batches of :data:`BATCH`, from a server-side cursor of
    the driver: its plain tuples cost the rating thread, what a billrun waits for, a third less than
    SQLAlchemy's streamed rows (2.1-2.2 s of CPU against 3.3-3.5 s for 1,000,000 legs)."""
    compiled = _LEGS.compile(dialect=reader.dialect)
    bound = {name: params[name] for name in compiled.params}
    raw = reader.connection.driver_connection
    assert raw is not None
    with raw.cursor(name="cdrflow_billrun_legs") as cursor:
        cursor.itersize = BATCH
        cursor.execute(str(compiled), bound)
        while batch := cursor.fetchmany(BATCH):
            yield batch


def mark_failed(control: Connection, billrun_id: int, exc: BaseException) -> None:
    """The billrun row (committed as running on ``control``) says failed and why; its charges
    rolled back with the run's own transaction."""
    control.execute(
        text("UPDATE billruns SET status = 'failed', finished_at = now(), error = :e WHERE id = :id"),
        {"id": billrun_id, "e": " ".join(str(exc).split())[:2000]},
    )


def _open(control: Connection, kind: str, start: date, end: date, scope: str) -> tuple[int, int]:
    """The billrun row, committed as running (the advisory lock makes its version unique).

    A billrun of the same kind, period and scope still ``running`` here belongs to a process that
    died (a live one would hold the advisory lock this caller holds): it is marked failed, so it
    neither looks busy for ever nor hides that it never closed."""
    control.execute(
        text(
            "UPDATE billruns SET status = 'failed', finished_at = now(), "
            "error = 'abandoned: the process running it ended before it closed (nothing of it was kept)' "
            "WHERE kind = :k AND period_start = :s AND scope = :scope AND status = 'running'"
        ),
        {"k": kind, "s": start, "scope": scope},
    )
    row = control.execute(
        text(
            "INSERT INTO billruns (kind, period_start, period_end, scope, version) "
            "SELECT :k, :s, :e, :scope, coalesce(max(version), 0) + 1 FROM billruns "
            "WHERE kind = :k AND period_start = :s AND scope = :scope RETURNING id, version"
        ),
        {"k": kind, "s": start, "e": end, "scope": scope},
    ).one()
    return int(row.id), int(row.version)


def _close(conn: Connection, billrun_id: int, files: list[int], source: str = "charges") -> Billrun:
    """Close the billrun (:func:`closing.close`: invoice lines, counts, totals, from ``source``)
    and return it."""
    closing.close(conn, billrun_id, files, source)
    result = get(conn, billrun_id)
    result.files = len(files)
    return result


_SELECT = (
    "SELECT id, kind, period_start, period_end, scope, version, status, calls, rated, unrated, totals, "
    "buy_rated, buy_unrated, buy_totals, started_at, finished_at FROM billruns"
)


def _row(r) -> Billrun:
    return Billrun(
        id=r.id,
        kind=r.kind,
        period_start=r.period_start,
        period_end=r.period_end,
        scope=r.scope,
        version=r.version,
        status=r.status,
        calls=r.calls,
        rated=r.rated,
        unrated=dict(r.unrated),
        totals={c: Decimal(a) for c, a in r.totals.items()},
        buy_rated=r.buy_rated,
        buy_unrated=dict(r.buy_unrated),
        buy_totals={c: Decimal(a) for c, a in r.buy_totals.items()},
        started_at=r.started_at,
        finished_at=r.finished_at,
    )


def get(conn: Connection, billrun_id: int) -> Billrun:
    return _row(conn.execute(text(f"{_SELECT} WHERE id = :id"), {"id": billrun_id}).one())


def _last_closed(conn: Connection, kind: str, start: date, scope: str) -> Billrun | None:
    row = conn.execute(
        text(
            f"{_SELECT} WHERE kind = :k AND period_start = :s AND scope = :scope AND status = 'closed' "
            "ORDER BY version DESC LIMIT 1"
        ),
        {"k": kind, "s": start, "scope": scope},
    ).one_or_none()
    return _row(row) if row else None
