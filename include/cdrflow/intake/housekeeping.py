"""Housekeeping: repair what a dead worker left behind.

Runs first in every ``cdrflow_process`` run and as ``cdrflow housekeeping``; safe to run at any
moment, by any number of workers at once, and twice in a row (the second run finds nothing):

- claims whose lease ran out (their run died) are removed, so the files come back at once;
- files in ``processing`` that no live run holds go back to ``received`` (a loader's own
  ``processing`` is never committed, it lives inside the file's loading transaction; only a
  worker killed at an unlucky moment can leave one behind). A row another transaction has
  locked is skipped: it is being worked on;
- ``tmp/*.part`` objects of the raw store older than ``part_age`` are deleted: the partial copy
  of an upload whose process was killed (a live upload writes its part continuously, and
  one that took longer than an hour without a write is not live).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from cdrflow.config.errors import one_line
from cdrflow.intake import claims
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import set_status

log = logging.getLogger(__name__)

PART_AGE = timedelta(hours=1)


@dataclass
class Repairs:
    expired_claims: list[claims.Claim] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)  # processing -> received
    parts_deleted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be repaired, and why

    def lines(self) -> list[str]:
        """One line per repair, for the task log and the command line."""
        out = [f"claim of run {c.run_id} on file {c.file_id} expired: removed" for c in self.expired_claims]
        out += [f"file {i}: processing with no live claim: back to received" for i in self.requeued]
        out += [f"raw store: removed the partial upload {p}" for p in self.parts_deleted]
        out += [f"not repaired: {p}" for p in self.problems]
        return out or ["nothing to repair"]


_ORPHANS = text("""
SELECT f.id FROM cdr_files f
WHERE f.status = 'processing'
  AND NOT EXISTS (
      SELECT 1 FROM file_claims c WHERE c.file_id = f.id AND c.claimed_at >= now() - :lease)
ORDER BY f.id
FOR UPDATE OF f SKIP LOCKED
""")


def run(
    engine: Engine,
    store: RawStore | None,
    *,
    lease: timedelta = claims.LEASE,
    part_age: timedelta = PART_AGE,
) -> Repairs:
    """Repair claims, stranded files and partial uploads; log and return what was done."""
    repairs = Repairs(expired_claims=claims.expire(engine, lease))
    with engine.begin() as conn:
        for (file_id,) in conn.execute(_ORPHANS, {"lease": lease}).all():
            set_status(conn, file_id, "received", "housekeeping: processing with no live claim (its worker died)")
            repairs.requeued.append(file_id)
    if store is not None:
        _remove_parts(store, part_age, repairs)
    for line in repairs.lines():
        log.info("housekeeping: %s", line)
    return repairs


def _remove_parts(store: RawStore, part_age: timedelta, repairs: Repairs) -> None:
    tmp = store.base / "tmp"
    try:
        if not tmp.exists():
            return
        parts = sorted(tmp.glob("*.part"), key=str)
    except Exception as exc:  # the store is away: the rest of the housekeeping still counts
        repairs.problems.append(f"raw store {store.describe()}/tmp not listed: {one_line(exc)}")
        return
    cutoff = datetime.now(UTC) - part_age
    for part in parts:
        try:
            if _modified(part.stat()) < cutoff:
                part.unlink(missing_ok=True)
                repairs.parts_deleted.append(f"tmp/{part.name}")
        except FileNotFoundError:  # its upload finished (renamed) or another worker removed it
            continue
        except Exception as exc:
            repairs.problems.append(f"raw store tmp/{part.name}: {one_line(exc)}")


def _modified(info) -> datetime:
    """When an object was last written, from fsspec's info: ``mtime`` (local files, seconds) or
    ``LastModified`` (S3). A local store's path (``upath``) gives a stat result around that info."""
    if hasattr(info, "as_info"):
        info = info.as_info()
    mtime = info.get("mtime")
    if isinstance(mtime, (int, float)):
        return datetime.fromtimestamp(mtime, UTC)
    stamp = info.get("LastModified") or info.get("last_modified") or mtime
    if isinstance(stamp, datetime):
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return datetime.now(UTC)  # unknown age: treated as new, never deleted
