"""Which processing run works on which received files, and for how long.

``claim`` takes up to ``limit`` received files for one run with ``FOR UPDATE SKIP LOCKED``: two
runs claiming at the same moment get disjoint sets, and a file claimed by a live run is not
taken again. A claim is a lease: it holds for ``LEASE`` (five minutes) after its last renewal.
A run renews its claims while it works (:class:`Heartbeat`, every ``HEARTBEAT`` seconds), so a
slow live run keeps its files however long they take, and the files of a run that died
(``kill -9``, a lost worker) come back within minutes. The loader still locks each file's row
and checks its status in the loading transaction, so even an expired claim cannot load a file
twice.

``batches`` cuts the claimed files into a few groups for dynamic task mapping: a day of thousands
of small files becomes a handful of tasks, a few big files one task each.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, text

from cdrflow.config.errors import one_line
from cdrflow.intake.registry import set_status

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # a claim not renewed for this long belongs to a dead run
HEARTBEAT = 30.0  # seconds between renewals of a working run's claims


@dataclass(frozen=True)
class Claimed:
    id: int
    size: int


@dataclass(frozen=True)
class Claim:
    """Who holds a file, since when (``age``: time since the last renewal) and whether the
    lease still runs."""

    file_id: int
    run_id: str
    claimed_at: datetime
    age: timedelta
    live: bool

    def describe(self) -> str:
        """``claimed by RUN for 3m`` or ``claim of RUN expired 12m ago``."""
        if self.live:
            return f"claimed by {self.run_id}, renewed {_ago(self.age)} ago"
        return f"claim of {self.run_id} expired, last renewed {_ago(self.age)} ago"


def _ago(age: timedelta) -> str:
    seconds = max(int(age.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


_CLAIM = text("""
WITH picked AS (
    SELECT f.id, f.file_size FROM cdr_files f
    LEFT JOIN file_claims c ON c.file_id = f.id
    WHERE f.status = 'received'
      AND (c.file_id IS NULL OR c.run_id = :run OR c.claimed_at < now() - :lease)
      AND (CAST(:carrier AS text) IS NULL OR f.carrier = :carrier)
      AND (CAST(:ids AS bigint[]) IS NULL OR f.id = ANY(:ids))
    ORDER BY f.id
    LIMIT :limit
    FOR UPDATE OF f SKIP LOCKED
), claimed AS (
    INSERT INTO file_claims (file_id, run_id, claimed_at)
    SELECT id, :run, now() FROM picked
    ON CONFLICT (file_id) DO UPDATE SET run_id = EXCLUDED.run_id, claimed_at = EXCLUDED.claimed_at
    RETURNING file_id
)
SELECT p.id, p.file_size FROM picked p JOIN claimed c ON c.file_id = p.id
""")


def claim(
    engine: Engine,
    run_id: str,
    *,
    carrier: str | None = None,
    file_ids: list[int] | None = None,
    limit: int = 10_000,
    lease: timedelta = LEASE,
) -> list[Claimed]:
    """Claim received files for ``run_id`` (optionally one carrier's, or only ``file_ids``).
    Files ``run_id`` holds already are claimed again (a retry); files another run holds are
    taken only once that run's lease ran out."""
    with engine.begin() as conn:
        rows = conn.execute(
            _CLAIM,
            {
                "run": run_id,
                "lease": lease,
                "carrier": carrier,
                "ids": list(file_ids) if file_ids else None,
                "limit": limit,
            },
        ).all()
    return sorted((Claimed(r.id, r.file_size) for r in rows), key=lambda c: c.id)


def renew(engine: Engine, run_id: str | None, file_ids: list[int]) -> int:
    """Restart the lease of ``run_id``'s claims on ``file_ids`` (any run's when None); returns
    how many claims were renewed."""
    with engine.begin() as conn:
        return conn.execute(
            text(
                "UPDATE file_claims SET claimed_at = now() WHERE file_id = ANY(:ids) "
                "AND (CAST(:run AS text) IS NULL OR run_id = :run)"
            ),
            {"ids": list(file_ids), "run": run_id},
        ).rowcount


def release(engine: Engine, file_ids: list[int], run_id: str | None = None) -> list[int]:
    """Drop the claims on ``file_ids`` (only ``run_id``'s when given): their batch is done, or an
    operator frees them. A file left received is then taken by the next run at once. Returns
    the ids whose claim was dropped."""
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "DELETE FROM file_claims WHERE file_id = ANY(:ids) "
                "AND (CAST(:run AS text) IS NULL OR run_id = :run) RETURNING file_id"
            ),
            {"ids": list(file_ids), "run": run_id},
        ).all()
    return sorted(r.file_id for r in rows)


def expire(engine: Engine, lease: timedelta = LEASE) -> list[Claim]:
    """Remove the claims whose lease ran out (their run died); returns them."""
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "DELETE FROM file_claims WHERE claimed_at < now() - :lease "
                "RETURNING file_id, run_id, claimed_at, now() - claimed_at AS age"
            ),
            {"lease": lease},
        ).all()
    return sorted((Claim(r.file_id, r.run_id, r.claimed_at, r.age, False) for r in rows), key=lambda c: c.file_id)


def held(conn: Connection, file_ids: list[int] | None = None, lease: timedelta = LEASE) -> dict[int, Claim]:
    """The claims on ``file_ids`` (all claims when None), live or expired, by file id."""
    rows = conn.execute(
        text(
            "SELECT file_id, run_id, claimed_at, now() - claimed_at AS age, "
            "claimed_at >= now() - :lease AS live FROM file_claims "
            "WHERE CAST(:ids AS bigint[]) IS NULL OR file_id = ANY(:ids) ORDER BY file_id"
        ),
        {"ids": list(file_ids) if file_ids is not None else None, "lease": lease},
    ).all()
    return {r.file_id: Claim(r.file_id, r.run_id, r.claimed_at, r.age, r.live) for r in rows}


class Heartbeat:
    """Renew ``run_id``'s claims on ``file_ids`` every ``every`` seconds while a batch runs::

        with Heartbeat(engine, run_id, ids):
            ...  # the claims stay live however long this takes

    A renewal that fails (the warehouse is briefly away) is logged and tried again at the next
    beat; the claims expire only if the beats stop for a whole lease.
    """

    def __init__(self, engine: Engine, run_id: str | None, file_ids: list[int], every: float = HEARTBEAT):
        self.engine, self.run_id, self.file_ids, self.every = engine, run_id, list(file_ids), every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="cdrflow-claims-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                renew(self.engine, self.run_id, self.file_ids)
            except Exception as exc:  # never kills the batch: the next beat tries again
                log.warning("claims of run %s not renewed: %s", self.run_id, one_line(exc))

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def requeue(engine: Engine, file_ids: list[int], reason: str) -> list[int]:
    """Put loaded, failed or rejected files back to ``received`` (an operator's re-run).
    Files already received stay so; duplicates and files being processed are left alone.
    Returns the ids that are now waiting to be processed."""
    waiting = []
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT id, status FROM cdr_files WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
            {"ids": list(file_ids)},
        ).all()
        for row in rows:
            if row.status in ("loaded", "failed", "rejected"):
                set_status(conn, row.id, "received", reason)
            if row.status in ("loaded", "failed", "rejected", "received"):
                waiting.append(row.id)
        conn.execute(text("DELETE FROM file_claims WHERE file_id = ANY(:ids)"), {"ids": waiting})
    return waiting


def batches(
    files: list[Claimed], *, max_files: int = 500, max_bytes: int = 512 << 20, max_batches: int = 1024
) -> list[list[int]]:
    """Cut files (in id order) into batches of at most ``max_files`` files and about
    ``max_bytes`` bytes; a file larger than ``max_bytes`` is a batch of its own. Never more than
    ``max_batches`` batches (Airflow's max_map_length): the limits grow to fit."""
    if not files:
        return []
    total = sum(f.size for f in files)
    max_files = max(max_files, -(-len(files) // max_batches))
    max_bytes = max(max_bytes, -(-total // max_batches))
    out: list[list[int]] = []
    size = 0
    for f in files:
        if not out or len(out[-1]) >= max_files or (size + f.size > max_bytes and out[-1]):
            out.append([])
            size = 0
        out[-1].append(f.id)
        size += f.size
    return out
