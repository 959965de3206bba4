"""What every collector shares: registering one found file and saying what became of it.

A collector (mailbox, SFTP, FTP, bucket, folder) finds files on a server, streams each one into
:func:`collect_one`, and only then cleans up on the server (moves a message, deletes or moves a
remote file). :func:`collect_one` registers the bytes through the one door into the warehouse
(:func:`cdrflow.intake.registry.register_file`: raw store first, SHA1 de-duplication), which logs the
file's line (source, carrier, name, size, SHA1, outcome); :func:`skipped` logs the line of a
file left on the server for the next run.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import Engine

from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import MailFields, register_file

log = logging.getLogger("cdrflow.sources")


@dataclass(frozen=True)
class Collected:
    """One file a collector handled."""

    carrier: str
    source: str  # mailbox | sftp | ftp | bucket | upload
    name: str  # file name as registered (never a path)
    outcome: str  # received | duplicate | skipped
    size: int | None = None
    sha1: str | None = None
    file_id: int | None = None
    duplicate_of: int | None = None
    source_uri: str | None = None
    reason: str = ""  # why it was skipped

    @property
    def is_new(self) -> bool:
        return self.outcome == "received"

    def line(self) -> str:
        what = {
            "received": "registered",
            "duplicate": f"duplicate of file {self.duplicate_of}",
            "skipped": f"skipped: {self.reason}",
        }.get(self.outcome, self.outcome)
        ident = f" -> file {self.file_id}" if self.file_id else ""
        return (
            f"{self.source} {self.carrier} {self.name} size={self.size if self.size is not None else '?'} "
            f"sha1={self.sha1 or '-'}{ident}: {what}"
        )

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# Registry file_source for each collector kind (seed 000 fileSource values).
FILE_SOURCE = {"mailbox": "email", "sftp": "sftp", "ftp": "ftp", "bucket": "bucket", "upload": "upload"}


def collect_one(
    engine: Engine,
    store: RawStore,
    stream: BinaryIO | str | os.PathLike,
    *,
    kind: str,
    carrier: str,
    name: str,
    source_uri: str | None = None,
    mail: MailFields | None = None,
) -> Collected:
    """Register one found file (the registry logs its line). ``stream`` is read once, to its end.

    Raises :class:`~cdrflow.config.errors.SourceUnreadable` when this file cannot be read (the
    collector skips it) and :class:`~cdrflow.config.errors.RawStoreUnavailable` when the raw
    store cannot take bytes (the collector stops: its task fails)."""
    reg = register_file(
        engine,
        store,
        stream,
        file_name=name,
        carrier=carrier,
        file_source=FILE_SOURCE[kind],
        source_uri=source_uri,
        mail=mail,
    )
    done = Collected(
        carrier=carrier,
        source=kind,
        name=reg.file_name,
        size=reg.size,
        sha1=reg.sha1,
        file_id=reg.file_id,
        duplicate_of=reg.duplicate_of,
        source_uri=source_uri,
        outcome="duplicate" if reg.is_duplicate else "received",
    )
    return done


def skipped(
    *, kind: str, carrier: str, name: str, reason: str, size: int | None = None, source_uri: str | None = None
) -> Collected:
    """A file seen but left where it is this time (still being written, no done marker...)."""
    done = Collected(
        carrier=carrier, source=kind, name=name, size=size, source_uri=source_uri, outcome="skipped", reason=reason
    )
    log.info(done.line())
    return done


def matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether a file name matches one of the glob patterns (case-insensitive)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)
