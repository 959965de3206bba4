"""Process one registered file: unpack it when it is an archive, otherwise load it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine, text

from cdrflow import archives
from cdrflow.loader import LoadResult, load_file
from cdrflow.rawstore import RawStore

log = logging.getLogger(__name__)


def process_file(engine: Engine, store: RawStore, file_id: int, *,
                 progress: Callable[[str], None] | None = None) -> LoadResult:
    """Unpack (archives) or load (CDR files) ``file_id``; members of an archive are processed
    right after it. Returns the outcome of the file itself."""
    with engine.connect() as conn:
        key = conn.execute(text("SELECT stored_file_id FROM cdr_files WHERE id = :id"), {"id": file_id}).scalar()
    with store.open(key) as stream:
        kind = archives.kind_of(stream.read(4))
    if kind is None:
        return load_file(engine, store, file_id, progress=progress)
    try:
        members = archives.unpack(engine, store, file_id)
    except archives.ArchiveRejected as exc:
        (progress or log.warning)(str(exc))
        return LoadResult(file_id, "rejected", message=str(exc))
    for member in members:
        if not member.is_duplicate:
            process_file(engine, store, member.file_id, progress=progress)
    return LoadResult(file_id, "loaded", message=f"archive unpacked: {len(members)} member(s)")
