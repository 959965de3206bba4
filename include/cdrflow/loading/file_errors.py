"""What becomes of a file whose processing raised instead of ending loaded, failed or rejected.

- Its stored bytes are gone (the raw object was deleted): the file is ``failed`` at once with
  ``stored bytes missing: <key>`` in its log; it can be re-run once the bytes are back.
- The warehouse or the raw store away (a lost connection, an unavailable store): nothing is
  wrong with the file. It stays ``received``, a line says so when the warehouse can be written,
  and no attempt is counted: an outage never fails files.
- Anything else (a bug, a value no check foresaw): the file's transaction rolled back, so it is
  still ``received``; a line ``processing attempt N of 3 failed ...: <reason>`` goes into its
  log and the next run (or the task's retry) tries again. The third attempt in a row that fails
  makes it ``failed`` (``gave up after 3 attempts``), so a file that always breaks stops being
  retried every five minutes; an operator re-runs it after the fix.

Each returns the file's :class:`LoadResult`: ``failed``, or ``error`` (still received).
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError

from cdrflow.config.errors import RawStoreUnavailable, one_line
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import append_log, set_status
from cdrflow.loading.transaction import LoadResult

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# Errors of the warehouse or the raw store, not of the file: never counted as an attempt.
OUTAGES = (RawStoreUnavailable, OperationalError, InterfaceError, ConnectionError, TimeoutError)
_ATTEMPT = "processing attempt "


def after_exception(engine: Engine, store: RawStore, file_id: int, exc: BaseException) -> LoadResult:
    """Record what ``exc`` means for file ``file_id`` and return its outcome; never raises
    (when even the recording fails, the file stays as it was and the outcome says why)."""
    try:
        if isinstance(exc, FileNotFoundError) and (missing := _missing_key(engine, store, file_id)):
            return bytes_missing(engine, file_id, missing)
        if isinstance(exc, OUTAGES):
            return _outage(engine, file_id, one_line(exc))
        return _count_attempt(engine, file_id, one_line(exc))
    except Exception as recording:
        log.exception("file %s: the error could not be recorded", file_id)
        return LoadResult(file_id, "error", message=f"{one_line(exc)} (not recorded: {one_line(recording)})")


def _missing_key(engine: Engine, store: RawStore, file_id: int) -> str | None:
    """The file's raw store key when its object is really gone, else None."""
    with engine.connect() as conn:
        key = conn.execute(text("SELECT stored_file_id FROM cdr_files WHERE id = :id"), {"id": file_id}).scalar()
    if key is None or store.path_for(key).exists():
        return None
    return key


def bytes_missing(engine: Engine, file_id: int, key: str) -> LoadResult:
    """Mark file ``file_id`` failed: its raw object ``key`` is not in the store."""
    message = f"stored bytes missing: {key}"
    with engine.begin() as conn:
        status = conn.execute(
            text("SELECT status FROM cdr_files WHERE id = :id FOR UPDATE SKIP LOCKED"), {"id": file_id}
        ).scalar()
        if status == "received":
            set_status(conn, file_id, "failed", message, processed=True)
        elif status == "failed":
            append_log(conn, file_id, f"re-run: {message}")
        else:  # another worker has it, or it moved on meanwhile: not ours to mark
            return LoadResult(file_id, "skipped", message=f"{message} (file is {status or 'locked'})")
    log.warning("file %s: %s", file_id, message)
    return LoadResult(file_id, "failed", message=message)


def _outage(engine: Engine, file_id: int, reason: str) -> LoadResult:
    with engine.begin() as conn:
        append_log(
            conn, file_id, f"not processed, left received (the warehouse or the raw store was unavailable): {reason}"
        )
    return LoadResult(file_id, "error", message=f"{reason} (an outage, not the file's fault; left received)")


def _count_attempt(engine: Engine, file_id: int, reason: str) -> LoadResult:
    with engine.begin() as conn:
        row = conn.execute(
            text("SELECT status, processing_log FROM cdr_files WHERE id = :id FOR UPDATE SKIP LOCKED"),
            {"id": file_id},
        ).first()
        if row is None or row.status != "received":
            return LoadResult(file_id, "error", message=reason)
        attempt = attempts(row.processing_log) + 1
        if attempt >= MAX_ATTEMPTS:
            set_status(conn, file_id, "failed", f"gave up after {attempt} attempts: {reason}", processed=True)
            return LoadResult(file_id, "failed", message=f"gave up after {attempt} attempts: {reason}")
        append_log(
            conn, file_id, f"{_ATTEMPT}{attempt} of {MAX_ATTEMPTS} failed, left received for the next run: {reason}"
        )
    return LoadResult(file_id, "error", message=f"{reason} (attempt {attempt} of {MAX_ATTEMPTS}; left received)")


def attempts(processing_log: str | None) -> int:
    """Failed processing attempts in a row: attempt lines since the file's last status move."""
    count = 0
    for line in (processing_log or "").splitlines():
        message = line.split(" ", 1)[1] if " " in line else ""
        if message.startswith("status "):
            count = 0
        elif message.startswith(_ATTEMPT):
            count += 1
    return count
