"""Process registered files: unpack archives, parse, validate and load CDR files.

``process_file`` handles one file. ``process_batch`` handles the files of one processing task:
big files one by one (streamed, chunk by chunk); small files in groups of one file type
(:mod:`cdrflow.loading.small_files`: parsed, validated and encoded for COPY together, since each of
those steps has a fixed cost that outweighs a file of a thousand calls), prepared in a thread
while the previous group loads; then each file is loaded in its own transaction as usual.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, text

from cdrflow.config.errors import CdrflowError
from cdrflow.formats.base import FormatError
from cdrflow.intake import archives, claims
from cdrflow.intake.rawstore import RawStore
from cdrflow.loading import small_files
from cdrflow.loading.chunks import CheckedChunk, options_for
from cdrflow.loading.payloads import column_kinds
from cdrflow.loading.transaction import FileBusy, LoadResult, load_file
from cdrflow.warehouse import carriers

log = logging.getLogger(__name__)

SMALL_FILE_BYTES = 8 << 20  # files up to this size are prepared in groups
GROUP_BYTES = 16 << 20  # bytes of small files of one type prepared together (24 MB: a
# little faster, 200 MB more memory)
LOADERS = 2  # small files loading at the same time


def process_file(
    engine: Engine, store: RawStore, file_id: int, *, progress: Callable[[str], None] | None = None
) -> LoadResult:
    """Unpack (archives) or load (CDR files) ``file_id``; members of an archive are processed
    right after it. Returns the outcome of the file itself."""
    with engine.connect() as conn:
        key = conn.execute(text("SELECT stored_file_id FROM cdr_files WHERE id = :id"), {"id": file_id}).scalar()
    if _is_archive(store, key):
        return _unpack(engine, store, file_id, progress)
    return load_file(engine, store, file_id, progress=progress)


def _is_archive(store: RawStore, key: str) -> bool:
    with store.open(key) as stream:
        return archives.kind_of(stream.read(4)) is not None


def _unpack(engine, store, file_id, progress) -> LoadResult:
    try:
        members = archives.unpack(engine, store, file_id)
    except archives.ArchiveRejected as exc:
        (progress or log.warning)(str(exc))
        return LoadResult(file_id, "rejected", message=str(exc))
    for member in members:
        if not member.is_duplicate:
            process_file(engine, store, member.file_id, progress=progress)
    return LoadResult(file_id, "loaded", message=f"archive unpacked: {len(members)} member(s)")


@dataclass
class BatchOutcome:
    results: list[LoadResult]
    errors: dict[int, str]  # file id -> what went wrong (the file stays received)
    seconds: float

    def summary(self) -> dict:
        by_status: dict[str, int] = {}
        for r in self.results:
            by_status[r.status] = by_status.get(r.status, 0) + 1
        return {
            "files": len(self.results) + len(self.errors),
            "by_status": by_status,
            "calls_loaded": sum(r.loaded for r in self.results),
            "rows_rejected": sum(r.rejected for r in self.results),
            "duplicates": sum(r.duplicates for r in self.results),
            "errors": {str(k): v for k, v in self.errors.items()},
            "seconds": round(self.seconds, 2),
        }


@dataclass
class _Small:
    id: int
    file_type: str
    chunks: list[CheckedChunk] | None = None
    error: FormatError | None = None

    def prepared(self):
        if self.error is not None:
            raise self.error
        yield from self.chunks or []


def process_batch(
    engine: Engine, store: RawStore, file_ids: list[int], *, progress: Callable[[str], None] | None = None
) -> BatchOutcome:
    """Process ``file_ids``; one file's failure never stops the others. A file another worker
    holds, or that is no longer received, is skipped. Errors are collected per file (its
    transaction rolled back, so it stays received for the next run)."""
    say = progress or log.info
    started = time.perf_counter()
    results: list[LoadResult] = []
    errors: dict[int, str] = {}

    def run(file_id: int, fn: Callable[[], LoadResult]) -> None:
        try:
            results.append(fn())
        except FileBusy as exc:
            results.append(LoadResult(file_id, "skipped", message=str(exc)))
        except Exception as exc:
            log.exception("file %s could not be processed", file_id)
            errors[file_id] = f"{type(exc).__name__}: {exc}"

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT f.id, f.file_type, f.file_size, f.stored_file_id, f.carrier FROM cdr_files f "
                "WHERE f.id = ANY(:ids) AND f.status IN ('received', 'failed') ORDER BY f.id"
            ),
            {"ids": list(file_ids)},
        ).all()
        known = {c: carriers.get(conn, c) for c in {r.carrier for r in rows}}
        kinds = column_kinds(conn.connection.driver_connection)
    for missing in sorted(set(file_ids) - {r.id for r in rows}):
        results.append(LoadResult(missing, "skipped", message="not received or failed any more"))

    small = []
    for row in rows:
        if row.file_size > SMALL_FILE_BYTES or not row.file_type:
            run(row.id, lambda r=row: process_file(engine, store, r.id, progress=say))
        elif _is_archive(store, row.stored_file_id):
            run(row.id, lambda r=row: _unpack(engine, store, r.id, say))
        else:
            small.append(row)
    # Small files: a thread prepares the next group (small_files: parsed, validated and encoded
    # for COPY together) while this one loads (the loading threads mostly wait for PostgreSQL).
    # Two loading threads, each with its own connection and transaction per file: while one
    # waits for PostgreSQL, the other prepares its next COPY.
    ready: queue.Queue[list[_Small] | None] = queue.Queue(maxsize=1)
    failures: list[BaseException] = []
    parser = threading.Thread(
        target=_prepare_groups,
        args=(store, small, known, kinds, errors, ready, failures),
        name="cdrflow-parse-ahead",
        daemon=True,
    )
    parser.start()
    files: queue.Queue[_Small | None] = queue.Queue(maxsize=LOADERS * 2)

    def load_prepared() -> None:
        while (f := files.get()) is not None:
            run(f.id, lambda: load_file(engine, store, f.id, prepared=f.prepared(), progress=say, kinds=kinds))

    loaders = [threading.Thread(target=load_prepared, name=f"cdrflow-load-{n}", daemon=True) for n in range(LOADERS)]
    for t in loaders:
        t.start()
    while (group := ready.get()) is not None:
        for f in group:
            files.put(f)
    for _ in loaders:
        files.put(None)
    for t in loaders:
        t.join()
    parser.join()
    if failures:
        raise failures[0]
    claims.release(engine, file_ids)
    outcome = BatchOutcome(results, errors, time.perf_counter() - started)
    s = outcome.summary()
    say(
        f"batch of {s['files']} file(s) in {s['seconds']}s: {s['by_status']}, {s['calls_loaded']:,} calls "
        f"loaded, {s['rows_rejected']:,} rows rejected, {s['duplicates']:,} duplicates, {len(errors)} error(s)"
    )
    return outcome


def _prepare_groups(store, rows, known, kinds, errors, ready: queue.Queue, failures: list) -> None:
    """Prepare small files in groups of one file type; hand each group over."""
    pending: dict[str, list] = {}
    sizes: dict[str, int] = {}
    try:
        for row in rows:
            pending.setdefault(row.file_type, []).append(row)
            sizes[row.file_type] = sizes.get(row.file_type, 0) + row.file_size
            if sizes[row.file_type] >= GROUP_BYTES:
                sizes.pop(row.file_type)
                ready.put(_prepared(store, pending.pop(row.file_type), known, kinds, errors))
        for group in pending.values():
            ready.put(_prepared(store, group, known, kinds, errors))
    except BaseException as exc:  # handed to the loading thread
        failures.append(exc)
    finally:
        ready.put(None)


def _prepared(store, rows, known, kinds, errors) -> list[_Small]:
    file_type = rows[0].file_type
    options = {}
    for carrier in {row.carrier for row in rows}:
        try:
            options[carrier] = options_for(known[carrier], file_type)
        except CdrflowError as exc:  # e.g. a mapping file that does not load: that carrier's files
            for row in rows:
                if row.carrier == carrier:
                    errors[row.id] = str(exc)
    rows = [row for row in rows if row.carrier in options]
    if not rows:
        return []
    datas = []
    for row in rows:
        with store.open(row.stored_file_id) as stream:
            datas.append(stream.read())
    prepared = small_files.prepare(datas, [r.carrier for r in rows], [r.id for r in rows], file_type, options, kinds)
    return [_Small(row.id, file_type, p.chunks, p.error) for row, p in zip(rows, prepared)]
