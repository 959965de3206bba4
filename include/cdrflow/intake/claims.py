"""Which processing run works on which received files.

``claim`` takes up to ``limit`` received files for one run with ``FOR UPDATE SKIP LOCKED``: two
runs claiming at the same moment get disjoint sets, and a file claimed by a live run is not
taken again until its lease runs out (the run died). The loader still locks each file's row and
checks its status in the loading transaction, so even an expired claim cannot load a file twice.

``batches`` cuts the claimed files into a few groups for dynamic task mapping: a day of thousands
of small files becomes a handful of tasks, a few big files one task each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text

from cdrflow.intake.registry import set_status

LEASE = timedelta(hours=2)


@dataclass(frozen=True)
class Claimed:
    id: int
    size: int


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
    """Claim received files for ``run_id`` (optionally one carrier's, or only ``file_ids``)."""
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


def release(engine: Engine, file_ids: list[int]) -> None:
    """Drop the claims on ``file_ids`` (their batch is done: loaded, or left received after an
    error, in which case the next run may take them at once)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM file_claims WHERE file_id = ANY(:ids)"), {"ids": list(file_ids)})


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
