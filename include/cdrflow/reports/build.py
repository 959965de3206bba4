"""Building report requests: claim one pending request, COPY its rows into the artifact store, record it.

**Claims.** :func:`claim_next` takes the oldest pending request with ``FOR UPDATE SKIP LOCKED``
and writes the builder's name and the time into it (``claimed_by``, ``claimed_at``) in a short
transaction of its own: two builders claiming at the same moment get different requests, and a
request claimed by a live builder is not taken again. The claim is a lease (:data:`LEASE`, ten
minutes), renewed every :data:`HEARTBEAT` seconds while the build runs, so a slow build keeps its
request however long it takes. A builder that died (``kill -9``, a lost worker) leaves its claim
to expire; the next builder takes the request again. After :data:`MAX_ATTEMPTS` builds that never
finished, the request is marked Failed instead of killing builders for ever.

**The build.** The report's SELECT (:mod:`cdrflow.reports.query`) runs as
``COPY (<select>) TO STDOUT WITH (FORMAT csv, HEADER true)`` through psycopg2's ``copy_expert``
in a read-only repeatable-read transaction (one consistent snapshot), straight into the store
(:class:`cdrflow.reports.store.ReportFile`: 1 MiB pieces, gzip optional, SHA-256 and size counted
on the way). COPY takes no bound parameters, so the SELECT is rendered with psycopg2's
``cursor.mogrify`` (see :func:`cdrflow.reports.query.render`).

**The outcome.** Complete (2) with the file's URL, bytes, SHA-256, row count, ``completed_at``
and ``expires_at`` = completion + 30 days; or Failed (3) with a one-line reason. Both updates
require the request still pending and still claimed by this builder: a request deleted while it
was being built (or taken over after a lost lease) keeps nothing, and the file just written is
removed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, and_, func, or_, select, update

from cdrflow.config.errors import CdrflowError, one_line
from cdrflow.reports import query, store
from cdrflow.reports.requests import COMPLETE, FAILED, PENDING, SHOWN, ReportRequest, from_row
from cdrflow.warehouse.tables import report_requests as T

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
HEARTBEAT = 30.0
MAX_ATTEMPTS = 3
RETENTION = timedelta(days=30)  # "CDRs are available for 30 days"


@dataclass(frozen=True)
class Outcome:
    request_id: str
    status: str  # complete | failed | discarded (deleted while it was being built)
    rows: int = 0
    bytes: int = 0
    sha256: str | None = None
    uri: str | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.status == "complete":
            return f"report {self.request_id}: complete, {self.rows:,} rows, {self.bytes:,} bytes ({self.uri})"
        if self.status == "failed":
            return f"report {self.request_id}: FAILED: {self.reason}"
        return f"report {self.request_id}: deleted while it was being built; its file was removed"


def worker_name() -> str:
    """A builder's name when nobody gives one: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def give_up_abandoned(engine: Engine, lease: timedelta = LEASE) -> list[str]:
    """Mark Failed the pending requests whose last :data:`MAX_ATTEMPTS` builds all died."""
    with engine.begin() as conn:
        rows = conn.execute(
            update(T)
            .where(T.c.status == PENDING, T.c.attempts >= MAX_ATTEMPTS, T.c.claimed_at < func.now() - lease)
            .values(
                status=FAILED,
                failure_reason=f"abandoned: {MAX_ATTEMPTS} builds started and none finished (the builder died)",
                updated_at=func.now(),
            )
            .returning(T.c.id)
        ).all()
    for r in rows:
        log.warning("report %s: %d builds died, marked failed", r.id, MAX_ATTEMPTS)
    return [str(r.id) for r in rows]


def claim_next(engine: Engine, worker: str, lease: timedelta = LEASE) -> ReportRequest | None:
    """Claim the oldest pending request nobody holds (or whose holder's lease ran out)."""
    picked = (
        select(T.c.id)
        .where(
            T.c.status == PENDING,
            or_(T.c.claimed_at.is_(None), T.c.claimed_at < func.now() - lease),
        )
        .order_by(T.c.created_at, T.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with engine.begin() as conn:
        row = conn.execute(
            update(T)
            .where(T.c.id == picked)
            .values(claimed_by=worker, claimed_at=func.now(), attempts=T.c.attempts + 1, updated_at=func.now())
            .returning(*SHOWN)
        ).one_or_none()
    return from_row(row) if row is not None else None


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(T).where(T.c.status == PENDING)).scalar_one()


def pending_ids(engine: Engine, limit: int = 1000) -> list[str]:
    """The pending requests, oldest first (what the report DAG's watcher announces)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(T.c.id).where(T.c.status == PENDING).order_by(T.c.created_at, T.c.id).limit(limit)
        ).all()
    return [str(r.id) for r in rows]


def requeue_failed(engine: Engine, ids: list[str]) -> list[str]:
    """Make Failed requests Pending again (an operator's retry, after fixing the cause); returns
    the ids requeued. Requests in any other state are left alone."""
    if not ids:
        return []
    with engine.begin() as conn:
        rows = conn.execute(
            update(T)
            .where(T.c.id.in_(ids), T.c.status == FAILED)
            .values(
                status=PENDING,
                failure_reason=None,
                attempts=0,
                claimed_by=None,
                claimed_at=None,
                updated_at=func.now(),
            )
            .returning(T.c.id)
        ).all()
    return sorted(str(r.id) for r in rows)


class _Heartbeat:
    """Renews the builder's lease on one request while its build runs."""

    def __init__(self, engine: Engine, request_id: str, worker: str, every: float):
        self.engine, self.request_id, self.worker, self.every = engine, request_id, worker, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="cdrflow-report-lease", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(T)
                        .where(T.c.id == self.request_id, T.c.claimed_by == self.worker, T.c.status == PENDING)
                        .values(claimed_at=func.now())
                    )
            except Exception as exc:  # the next beat tries again; the lease is long
                log.warning("report %s: lease not renewed: %s", self.request_id, one_line(exc))

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def write_report(engine: Engine, request: ReportRequest, base_url: str) -> tuple[str, int, int, str]:
    """COPY the request's rows into the store; returns (uri, rows, bytes, sha256)."""
    from psycopg2 import sql as pgsql

    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        select_sql = query.render(cursor, query.report_select(query.Selection.of(request)))
        copy = pgsql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(pgsql.SQL(select_sql))
        target = store.ReportFile(base_url, store.key_for(request.id, request.gzip), request.gzip)
        with target as sink:
            cursor.copy_expert(copy, sink)
            rows = cursor.rowcount
        raw.rollback()  # read only: nothing to keep
    finally:
        raw.close()
    return target.uri, max(rows, 0), sink.bytes, sink.sha256.hexdigest()


def _reason(exc: Exception) -> str:
    """Why a build failed, in one line a client may read (no statement, no password)."""
    if isinstance(exc, CdrflowError):
        return one_line(exc)[:500]
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"the warehouse could not run the report: {first[0] if first else type(exc).__name__}"[:500]


def build(engine: Engine, request: ReportRequest, worker: str, base_url: str | None = None) -> Outcome:
    """Build one request this builder has claimed, and record the outcome."""
    base_url = base_url or store.store_url()
    mine = and_(T.c.id == request.id, T.c.status == PENDING, T.c.claimed_by == worker)
    try:
        with _Heartbeat(engine, request.id, worker, HEARTBEAT):
            uri, rows, size, sha256 = write_report(engine, request, base_url)
    except Exception as exc:
        reason = _reason(exc)
        log.warning("report %s failed: %s", request.id, reason, exc_info=not isinstance(exc, CdrflowError))
        with engine.begin() as conn:
            conn.execute(update(T).where(mine).values(status=FAILED, failure_reason=reason, updated_at=func.now()))
        return Outcome(request.id, "failed", reason=reason)
    with engine.begin() as conn:
        kept = conn.execute(
            update(T)
            .where(mine)
            .values(
                status=COMPLETE,
                artifact_uri=uri,
                bytes=size,
                sha256=sha256,
                row_count=rows,
                completed_at=func.now(),
                expires_at=func.now() + RETENTION,
                updated_at=func.now(),
            )
        ).rowcount
    if not kept:
        store.remove(uri)
        log.info("report %s was deleted (or taken over) while it was being built; %s removed", request.id, uri)
        return Outcome(request.id, "discarded")
    log.info("report %s: %d rows, %d bytes, sha256 %s: %s", request.id, rows, size, sha256, uri)
    return Outcome(request.id, "complete", rows, size, sha256, uri)


def build_pending(
    engine: Engine,
    worker: str | None = None,
    *,
    once: bool = False,
    base_url: str | None = None,
    lease: timedelta = LEASE,
) -> list[Outcome]:
    """Build pending requests one after another until none is left (``once``: at most one).
    Several builders may run this at the same time: each request is built by one of them."""
    worker = worker or worker_name()
    give_up_abandoned(engine, lease)
    done: list[Outcome] = []
    while True:
        request = claim_next(engine, worker, lease)
        if request is None:
            break
        done.append(build(engine, request, worker, base_url))
        if once:
            break
    return done
