"""Compressed deliveries: ``.zip`` and ``.gz`` files, unpacked into files of their own.

The archive itself is registered like any file (its bytes kept, its SHA1 de-duplicated).
Unpacking registers every member as a file with ``parent_id`` pointing at the archive, so a
member that arrives again later, zipped or not, is recognised as a duplicate by its own SHA1.

Limits against decompression bombs: a member may expand to at most ``max_ratio`` times its
compressed size and ``max_bytes`` in absolute terms, and an archive may hold at most
``max_members`` members. The declared sizes are checked first, and the real output is
counted while it streams (declared sizes can lie). Member names are never used as paths:
only their final component is kept as the file name.
"""

from __future__ import annotations

import gzip
import logging
import zipfile
import zlib
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, text

from cdrflow.config.errors import CdrflowError, RawStoreUnavailable, one_line
from cdrflow.intake.names import clean_name
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import Registration, append_log, get_file, register_file, set_status

log = logging.getLogger(__name__)

ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Limits:
    max_ratio: float = 200.0
    max_bytes: int = 8 << 30  # 8 GiB of CDRs in one member
    max_members: int = 10_000


class ArchiveRejected(CdrflowError):
    """The archive cannot be unpacked safely (bomb, corrupt, too many members)."""


class ArchiveBusy(CdrflowError):
    """Another worker holds the archive, or it is not in a status that can be unpacked."""


def kind_of(head: bytes) -> str | None:
    """'zip', 'gzip' or None, from the first bytes of a file."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Bounded:
    """A read-only stream that fails once more than ``limit`` bytes came out of ``inner``."""

    def __init__(self, inner: _Readable, limit: int, what: str):
        self.inner, self.limit, self.what, self.count = inner, limit, what, 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise ArchiveRejected(f"{self.what} expands beyond {self.limit:,} bytes: refused as a decompression bomb")
        return data


def safe_name(member: str, fallback: str) -> str:
    """The member's name as a file name: the one rule of :func:`cdrflow.intake.names.clean_name`
    ('../../etc/x.csv' -> 'x.csv', control characters and newlines replaced)."""
    return clean_name(member, fallback)


_UNUSABLE = (CdrflowError, zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError)
# what a corrupt, truncated, encrypted or hostile archive raises (a corrupt gzip member surfaces
# as SourceUnreadable from register_file, a zip with an unknown method as NotImplementedError,
# an encrypted one as RuntimeError): the archive is rejected. Anything else (the raw store or the
# warehouse away) rolls back: the archive stays received for the next run.

_LOCK = text("""
SELECT * FROM cdr_files WHERE id = :id AND status IN ('received', 'failed') FOR NO KEY UPDATE SKIP LOCKED
""")


def unpack(engine: Engine, store: RawStore, file_id: int, limits: Limits = Limits()) -> list[Registration]:
    """Register the members of archive ``file_id`` and mark the archive loaded; an unusable
    archive (corrupt, truncated, encrypted, a bomb) is marked rejected with the reason and
    :class:`ArchiveRejected` raised. Any other error rolls back: the archive stays as it was.

    The archive's row is locked and its ``processing`` status held in one transaction for the
    whole unpacking (members are registered by other connections: ``FOR NO KEY UPDATE`` lets
    their ``parent_id`` reference it), so a worker that dies midway leaves it ``received``,
    never ``processing``. Raises :class:`ArchiveBusy` when another worker holds it or it is not
    received or failed."""
    members: list[tuple[str, Registration]] = []
    reason: str | None = None  # why the archive is rejected
    with engine.connect() as conn, conn.begin():
        record = conn.execute(_LOCK, {"id": file_id}).mappings().first()
        if record is None:
            get_file(conn, file_id)  # FileNotRegistered when there is no such file
            raise ArchiveBusy(f"file {file_id} is being processed by another worker or is not received or failed")
        set_status(conn, file_id, "processing", "unpacking archive")
        try:
            _unpack(engine, store, dict(record), limits, members)
        except RawStoreUnavailable:
            raise  # not the archive's fault: rolled back, it stays received
        except _UNUSABLE as exc:
            reason = one_line(exc)
        for original, m in members:
            renamed = f" (member name {original!r} is not a plain file name)" if original != m.file_name else ""
            append_log(conn, file_id, f"member {m.file_name} -> file {m.file_id} {m.status}{renamed}")
        if reason is None:
            set_status(conn, file_id, "loaded", f"archive unpacked: {len(members)} member(s)", lines=0, processed=True)
        else:
            set_status(conn, file_id, "rejected", f"archive not unpacked: {reason}", processed=True)
    if reason is not None:
        raise ArchiveRejected(f"file {file_id} {record['file_name']}: {reason}")
    return [m for _, m in members]


def _register_member(engine, store, record, stream, name) -> Registration:
    return register_file(
        engine,
        store,
        stream,
        file_name=name,
        carrier=record["carrier"],
        file_source=record["file_source"],
        file_type=record["file_type"],
        billing=record["billing"],
        daily=record["daily"],
        billrun=record["billrun"],
        source_uri=record["source_uri"],
        parent_id=record["id"],
        account_id=record["account_id"],  # an uploaded archive's members are its uploader's too
    )


def _unpack(engine, store, record, limits: Limits, out: list[tuple[str, Registration]]) -> None:
    """Register the members into ``out`` as they come (what was registered before a failure
    stays registered and is logged)."""
    with store.open(record["stored_file_id"]) as raw:
        kind = kind_of(raw.read(4))
        raw.seek(0)
        if kind == "gzip":
            name = record["file_name"]
            member = name[:-3] if name.lower().endswith(".gz") else name + ".out"
            limit = int(min(limits.max_bytes, max(record["file_size"], 1) * limits.max_ratio))
            with gzip.GzipFile(fileobj=raw) as gz:
                clean = safe_name(member, "member")
                out.append(
                    (clean, _register_member(engine, store, record, _Bounded(gz, limit, f"gzip {name!r}"), clean))
                )
            return
        if kind != "zip":
            raise ArchiveRejected("not a zip or gzip archive")
        with zipfile.ZipFile(raw) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) > limits.max_members:
                raise ArchiveRejected(f"{len(infos)} members, more than the limit of {limits.max_members}")
            for info in infos:  # declared sizes first: refuse before writing anything
                if info.file_size > limits.max_bytes or info.file_size > max(info.compress_size, 1) * limits.max_ratio:
                    raise ArchiveRejected(
                        f"member {info.filename!r} declares {info.file_size:,} bytes from "
                        f"{info.compress_size:,} compressed: refused as a decompression bomb"
                    )
            for n, info in enumerate(infos, start=1):
                name = safe_name(info.filename, f"member-{n}")
                if name != info.filename:
                    log.warning(
                        "archive %s: member name %r is not a plain file name; registered as %r",
                        record["id"],
                        info.filename,
                        name,
                    )
                limit = int(min(limits.max_bytes, max(info.compress_size, 1) * limits.max_ratio))
                with zf.open(info) as member:
                    out.append(
                        (
                            info.filename,
                            _register_member(
                                engine, store, record, _Bounded(member, limit, f"member {info.filename!r}"), name
                            ),
                        )
                    )
