"""The file registry (``cdr_files``): every file that arrived, fingerprinted by SHA1.

``register_file`` is the one door into the warehouse for bytes from any source. It stores the
bytes first (see :mod:`cdrflow.intake.rawstore`), then records the file. The first file with a given
SHA1 is the *original* (status ``received``); every later file with the same bytes, from any
source, is recorded with status ``duplicate`` pointing at the original, and is never loaded.
A partial unique index on ``original_hash`` makes that hold when two processes register the
same bytes at the same moment: one insert wins, the other becomes the duplicate.

Status changes go through :func:`set_status`, which applies the state machine of
:mod:`cdrflow.intake.status` in the UPDATE itself, so two workers cannot both make the same move.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, text

from cdrflow.config.errors import CdrflowError, FileNotRegistered, IllegalTransition, SourceUnreadable, one_line
from cdrflow.config.vocabulary import FILE_SOURCES
from cdrflow.intake import status
from cdrflow.intake.names import clean_name
from cdrflow.intake.rawstore import RawStore, StoredBlob
from cdrflow.intake.status import FileStatus
from cdrflow.warehouse import carriers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailFields:
    """Where a file that came by email came from (seed 000 ``mail*`` fields)."""

    message_id: str | None = None
    sender: str | None = None
    recipients: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class Registration:
    file_id: int
    file_name: str
    carrier: str
    file_source: str
    status: FileStatus
    sha1: str
    size: int
    file_path: str
    duplicate_of: int | None = None
    account_id: str | None = None

    @property
    def is_duplicate(self) -> bool:
        return self.status is FileStatus.DUPLICATE


def log_line(message: str) -> str:
    """One processing-log line: UTC timestamp, message, newline."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} {message.rstrip()}\n"


def _store_source(store: RawStore, source: BinaryIO | str | os.PathLike, file_name: str) -> StoredBlob:
    """Store the bytes of ``source``. Failing to read the source is :class:`SourceUnreadable`
    (that file is skipped); a failing store raises :class:`RawStoreUnavailable` from
    :meth:`RawStore.put_stream` and passes through (every file would fail the same way)."""
    try:
        if isinstance(source, (str, os.PathLike)):
            if "://" in str(source):
                from airflow.sdk import ObjectStoragePath

                with ObjectStoragePath(str(source)).open("rb") as stream:
                    return store.put_stream(stream)
            with open(Path(source), "rb") as stream:
                return store.put_stream(stream)
        return store.put_stream(source)
    except OSError as exc:
        raise SourceUnreadable(f"cannot read {file_name!r}: {one_line(exc)}") from exc
    except TypeError as exc:  # a text-mode stream hands str to the hasher
        raise SourceUnreadable(f"cannot read {file_name!r}: open it in binary mode ({one_line(exc)})") from exc


_INSERT_COLUMNS = """
    file_name, stored_file_id, file_source, carrier, file_type, billing, daily, billrun, notes,
    mail_message, mail_from, mail_to, mail_subject, file_path, original_hash, file_size, source_uri,
    parent_id, account_id, status, duplicate_of, processing_log"""
_INSERT_VALUES = """
    :file_name, :stored_file_id, :file_source, :carrier, :file_type, :billing, :daily, :billrun,
    :notes, :mail_message, :mail_from, :mail_to, :mail_subject, :file_path, :original_hash,
    :file_size, :source_uri, :parent_id, :account_id"""

_INSERT_ORIGINAL = text(f"""
INSERT INTO cdr_files ({_INSERT_COLUMNS})
VALUES ({_INSERT_VALUES}, 'received', NULL, :log)
ON CONFLICT (original_hash) WHERE duplicate_of IS NULL DO NOTHING
RETURNING id
""")

_INSERT_DUPLICATE = text(f"""
INSERT INTO cdr_files ({_INSERT_COLUMNS})
VALUES ({_INSERT_VALUES}, 'duplicate', :duplicate_of, :log)
RETURNING id
""")


def register_file(
    engine: Engine,
    store: RawStore,
    source: BinaryIO | str | os.PathLike,
    *,
    file_name: str,
    carrier: str,
    file_source: str,
    file_type: str | None = None,
    billing: bool | None = None,
    daily: bool | None = None,
    billrun: str | None = None,
    notes: str | None = None,
    mail: MailFields | None = None,
    source_uri: str | None = None,
    parent_id: int | None = None,
    account_id: str | None = None,
) -> Registration:
    """Store the bytes of ``source`` and record them in ``cdr_files``.

    ``source`` is a local path, an object storage URL or a binary stream; it is read once.
    ``file_name`` is recorded as :func:`cdrflow.intake.names.clean_name` makes it, whichever
    source brought it (the registration carries the recorded name).
    File type, billing and daily/monthly default to the carrier's settings. ``account_id``: the
    account that uploaded the file through the API (``cdr_files.account_id``; it sees the file).
    Raises :class:`SourceUnreadable` (nothing stored, no row) when the bytes cannot be read,
    :class:`RawStoreUnavailable` (no row) when the raw store cannot take them,
    :class:`UnknownCarrier` when the carrier is not configured.
    """
    file_name = clean_name(file_name)
    if file_source not in FILE_SOURCES:
        raise CdrflowError(f"file source must be one of {', '.join(FILE_SOURCES)}, got {file_source!r}")
    with engine.connect() as conn:
        carrier_row = carriers.get(conn, carrier)
    blob = _store_source(store, source, file_name)
    mail = mail or MailFields()
    params: dict[str, Any] = {
        "file_name": file_name,
        "stored_file_id": blob.key,
        "file_source": file_source,
        "carrier": carrier,
        "file_type": file_type or carrier_row.file_type,
        "billing": carrier_row.billable if billing is None else billing,
        "daily": (carrier_row.delivery == "daily") if daily is None else daily,
        "billrun": billrun,
        "notes": notes,
        "mail_message": mail.message_id,
        "mail_from": mail.sender,
        "mail_to": mail.recipients,
        "mail_subject": mail.subject,
        "file_path": blob.url,
        "original_hash": blob.sha1,
        "file_size": blob.size,
        "source_uri": source_uri,
        "parent_id": parent_id,
        "account_id": account_id,
        "log": log_line(
            f"registered {file_name!r} from {file_source}"
            f"{' ' + source_uri if source_uri else ''}"
            f"{f' (member of file {parent_id})' if parent_id else ''}: "
            f"sha1={blob.sha1} size={blob.size}"
        ),
    }
    with engine.begin() as conn:
        file_id = conn.execute(_INSERT_ORIGINAL, params).scalar()
        if file_id is not None:
            result = Registration(
                file_id,
                file_name,
                carrier,
                file_source,
                FileStatus.RECEIVED,
                blob.sha1,
                blob.size,
                blob.url,
                account_id=account_id,
            )
        else:
            # The insert above waited for any concurrent registration of these bytes to commit;
            # this new statement sees that winner.
            original = conn.execute(
                text("SELECT id FROM cdr_files WHERE original_hash = :h AND duplicate_of IS NULL"), {"h": blob.sha1}
            ).scalar_one()
            params["duplicate_of"] = original
            params["log"] += log_line(f"duplicate of file {original}: same SHA1, not loaded")
            file_id = conn.execute(_INSERT_DUPLICATE, params).scalar_one()
            result = Registration(
                file_id,
                file_name,
                carrier,
                file_source,
                FileStatus.DUPLICATE,
                blob.sha1,
                blob.size,
                blob.url,
                duplicate_of=original,
                account_id=account_id,
            )
    # the one log line per registered file, whichever collector or command brought it
    log.info(
        "%s %s %s size=%d sha1=%s -> file %d %s%s",
        file_source,
        carrier,
        file_name,
        blob.size,
        blob.sha1,
        result.file_id,
        result.status,
        f" (duplicate of {result.duplicate_of})" if result.duplicate_of else "",
    )
    return result


_SET_STATUS = text("""
UPDATE cdr_files
SET status = :new,
    processing_log = processing_log || :line,
    lines = COALESCE(:lines, lines),
    file_processed_stamp = CASE WHEN :processed THEN clock_timestamp() ELSE file_processed_stamp END
WHERE id = :id AND status = ANY(:sources)
RETURNING revision_number
""")


def set_status(
    conn: Connection,
    file_id: int,
    new: FileStatus | str,
    message: str,
    *,
    lines: int | None = None,
    processed: bool = False,
) -> int:
    """Move file ``file_id`` to ``new`` inside the caller's transaction; return its revision.

    The allowed previous statuses are part of the UPDATE, so the move is atomic: of two
    workers trying the same move, one succeeds and the other gets :class:`IllegalTransition`.
    """
    new = FileStatus(new)
    revision = conn.execute(
        _SET_STATUS,
        {
            "new": str(new),
            "line": log_line(f"status {new}: {message}"),
            "lines": lines,
            "processed": processed,
            "id": file_id,
            "sources": status.allowed_sources(new),
        },
    ).scalar()
    if revision is not None:
        return revision
    current = conn.execute(text("SELECT status FROM cdr_files WHERE id = :id"), {"id": file_id}).scalar()
    if current is None:
        raise FileNotRegistered(f"no registered file has id {file_id}")
    status.check(current, new)  # raises with the reason
    raise IllegalTransition(f"file {file_id} changed status concurrently (now {current})")


def append_log(conn: Connection, file_id: int, message: str) -> None:
    """Add a line to the file's processing log (the log is append-only)."""
    updated = conn.execute(
        text("UPDATE cdr_files SET processing_log = processing_log || :line WHERE id = :id"),
        {"line": log_line(message), "id": file_id},
    ).rowcount
    if not updated:
        raise FileNotRegistered(f"no registered file has id {file_id}")


def get_file(conn: Connection, file_id: int) -> dict[str, Any]:
    row = conn.execute(text("SELECT * FROM cdr_files WHERE id = :id"), {"id": file_id}).mappings().first()
    if row is None:
        raise FileNotRegistered(f"no registered file has id {file_id}")
    return dict(row)


def list_files(conn: Connection, *, limit: int = 50, id_after: int = 0) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT id, file_name, file_source, carrier, file_type, original_hash, file_size, "
            "status, duplicate_of, uploaded_date FROM cdr_files WHERE id > :after "
            "ORDER BY id LIMIT :limit"
        ),
        {"after": id_after, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]
