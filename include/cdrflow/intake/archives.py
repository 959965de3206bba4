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
import posixpath
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import Engine

from cdrflow.config.errors import CdrflowError
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


def kind_of(head: bytes) -> str | None:
    """'zip', 'gzip' or None, from the first bytes of a file."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


class _Bounded:
    """A read-only stream that fails once more than ``limit`` bytes came out of ``inner``."""

    def __init__(self, inner: BinaryIO, limit: int, what: str):
        self.inner, self.limit, self.what, self.count = inner, limit, what, 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise ArchiveRejected(f"{self.what} expands beyond {self.limit:,} bytes: refused as a decompression bomb")
        return data


def safe_name(member: str, fallback: str) -> str:
    """The last path component of a member name ('../../etc/x.csv' -> 'x.csv')."""
    name = posixpath.basename(member.replace("\\", "/")).strip()
    return name if name not in ("", ".", "..") else fallback


def unpack(engine: Engine, store: RawStore, file_id: int, limits: Limits = Limits()) -> list[Registration]:
    """Register the members of archive ``file_id``; mark the archive loaded (or rejected)."""
    with engine.begin() as conn:
        record = get_file(conn, file_id)
        set_status(conn, file_id, "processing", "unpacking archive")
    try:
        members = _unpack(engine, store, record, limits)
    except (ArchiveRejected, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        with engine.begin() as conn:
            set_status(conn, file_id, "rejected", f"archive not unpacked: {exc}")
        raise ArchiveRejected(f"file {file_id} {record['file_name']}: {exc}") from exc
    with engine.begin() as conn:
        for original, m in members:
            renamed = f" (member name {original!r} is not a plain file name)" if original != m.file_name else ""
            append_log(conn, file_id, f"member {m.file_name} -> file {m.file_id} {m.status}{renamed}")
        set_status(conn, file_id, "loaded", f"archive unpacked: {len(members)} member(s)", lines=0, processed=True)
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
    )


def _unpack(engine, store, record, limits: Limits) -> list[tuple[str, Registration]]:
    out: list[tuple[str, Registration]] = []
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
            return out
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
    return out
