"""Housekeeping of report requests: expired reports lose their file and become Expired (4).

A complete report is downloadable for 30 days (``expires_at``). After that the API already shows
status 4 and its link answers 410; :func:`expire` then deletes the file from the artifact store
and records the status, in batches (``FOR UPDATE SKIP LOCKED``: two housekeeping runs never
delete the same file, and neither waits for the other). A file that cannot be deleted (the store
is away) is named in the outcome and its request left as it is, for the next run. Deleting a
file that is already gone is not an error, so a run can always be repeated.

:func:`stale_parts` removes what a builder that died left in a local store: hidden
``reports/.<id>.csv.part`` files older than the build lease.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select, update

from cdrflow.reports import store
from cdrflow.reports.build import LEASE
from cdrflow.reports.requests import COMPLETE, EXPIRED
from cdrflow.warehouse.tables import report_requests as T

log = logging.getLogger(__name__)

BATCH = 200


@dataclass
class Expired:
    expired: list[str] = field(default_factory=list)  # request ids now Expired
    files_deleted: int = 0
    problems: dict[str, str] = field(default_factory=dict)  # request id -> why its file stays
    parts_deleted: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"{len(self.expired)} report(s) expired, {self.files_deleted} file(s) deleted"
        if self.parts_deleted:
            text += f", {len(self.parts_deleted)} unfinished file(s) of dead builds removed"
        if self.problems:
            text += "; NOT deleted: " + "; ".join(f"{k}: {v}" for k, v in self.problems.items())
        return text


def expire(engine: Engine, batch: int = BATCH) -> Expired:
    """Delete the files of complete reports past ``expires_at`` and mark them Expired."""
    out = Expired()
    skipped: list[str] = []
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                select(T.c.id, T.c.artifact_uri)
                .where(T.c.status == COMPLETE, T.c.expires_at <= func.now(), T.c.id.not_in(skipped))
                .order_by(T.c.expires_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                break
            done = []
            for r in rows:
                ident = str(r.id)
                try:
                    out.files_deleted += store.remove(r.artifact_uri)
                    done.append(ident)
                except store.StoreUnavailable as exc:
                    out.problems[ident] = str(exc)
                    skipped.append(ident)
                    log.warning("report %s: %s", ident, exc)
            if done:
                conn.execute(update(T).where(T.c.id.in_(done)).values(status=EXPIRED, updated_at=func.now()))
            out.expired += done
    for ident in out.expired:
        log.info("report %s expired: its file was deleted", ident)
    return out


def stale_parts(base_url: str | None = None, older_than: timedelta = LEASE) -> list[str]:
    """Remove unfinished report files (``.part``) older than ``older_than`` from a local store."""
    base_url = base_url or store.store_url()
    local = store.local_path(base_url)
    if local is None:  # an object store never shows an unfinished upload
        return []
    folder = Path(local) / store.PREFIX
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than.total_seconds()
    removed = []
    for part in folder.glob(".*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
                removed.append(str(part))
        except FileNotFoundError:
            continue
    return removed


def run(engine: Engine, base_url: str | None = None) -> Expired:
    """Everything housekeeping does, once."""
    out = expire(engine)
    out.parts_deleted = stale_parts(base_url)
    return out
