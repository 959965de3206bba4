"""Process registered files: unpack archives, parse, validate and load CDR files.

``process_tree`` handles one file (and the members of an archive), ``process_file`` returns
that file's own outcome. ``process_batch`` handles the files of one processing task:
big files one by one (streamed, chunk by chunk); small files in groups of one file type
(:mod:`cdrflow.loading.small_files`: parsed, validated and encoded for COPY together, since each of
those steps has a fixed cost that outweighs a file of a thousand calls), prepared in a thread
while the previous group loads; then each file is loaded in its own transaction as usual.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import Engine, text

from cdrflow.config.errors import CdrflowError, FileNotRegistered, one_line
from cdrflow.formats.base import FormatError
from cdrflow.intake import archives, claims
from cdrflow.intake.rawstore import RawStore
from cdrflow.loading import file_errors, small_files
from cdrflow.loading.chunks import CheckedChunk, options_for
from cdrflow.loading.payloads import column_kinds
from cdrflow.loading.transaction import FileBusy, LoadResult, load_file
from cdrflow.validation.policy import policy_for
from cdrflow.warehouse import carriers

log = logging.getLogger(__name__)

SMALL_FILE_BYTES = 8 << 20  # files up to this size are prepared in groups
GROUP_BYTES = 16 << 20  # bytes of small files of one type prepared together (24 MB: a
# little faster, 200 MB more memory)
LOADERS = 2  # small files loading at the same time


def process_tree(
    engine: Engine,
    store: RawStore,
    file_id: int,
    *,
    progress: Callable[[str], None] | None = None,
    accepted_by: str | None = None,
) -> list[LoadResult]:
    """Process ``file_id``: load a CDR file, or unpack an archive and process its members right
    after it. Returns the file's outcome first, then its members'. Never raises for one file's
    problem: an exception becomes that file's outcome (see :mod:`cdrflow.loading.file_errors`:
    ``failed`` when its stored bytes are missing, else ``error``, the file left received).
    ``accepted_by``: an operator accepts the file (and an archive's members) even over its
    threshold (see :func:`load_file`)."""
    say = progress or log.info
    return _guarded(engine, store, file_id, lambda: _tree(engine, store, file_id, say, accepted_by))


def process_file(
    engine: Engine, store: RawStore, file_id: int, *, progress: Callable[[str], None] | None = None
) -> LoadResult:
    """The outcome of ``file_id`` itself (members of an archive are processed too)."""
    return process_tree(engine, store, file_id, progress=progress)[0]


def _guarded(engine, store, file_id: int, fn: Callable[[], list[LoadResult]]) -> list[LoadResult]:
    try:
        return fn()
    except FileBusy as exc:
        return [LoadResult(file_id, "skipped", message=str(exc))]
    except Exception as exc:
        log.warning("file %s could not be processed: %s", file_id, one_line(exc), exc_info=True)
        return [file_errors.after_exception(engine, store, file_id, exc)]


def _tree(engine, store, file_id: int, say, accepted_by: str | None = None) -> list[LoadResult]:
    with engine.connect() as conn:
        key = conn.execute(text("SELECT stored_file_id FROM cdr_files WHERE id = :id"), {"id": file_id}).scalar()
    if key is None:
        raise FileNotRegistered(f"no registered file has id {file_id}")
    if _is_archive(store, key):
        return _unpack(engine, store, file_id, say, accepted_by)
    return [load_file(engine, store, file_id, progress=say, accepted_by=accepted_by)]


def _is_archive(store: RawStore, key: str) -> bool:
    with store.open(key) as stream:
        return archives.kind_of(stream.read(4)) is not None


def _unpack(engine, store, file_id, say, accepted_by: str | None = None) -> list[LoadResult]:
    try:
        members = archives.unpack(engine, store, file_id)
    except archives.ArchiveRejected as exc:
        say(str(exc))
        return [LoadResult(file_id, "rejected", message=str(exc))]
    except archives.ArchiveBusy as exc:
        raise FileBusy(str(exc)) from exc
    out = [LoadResult(file_id, "loaded", message=f"archive unpacked: {len(members)} member(s)")]
    for member in members:
        if not member.is_duplicate:
            out += process_tree(engine, store, member.file_id, progress=say, accepted_by=accepted_by)
    return out


@dataclass
class BatchOutcome:
    results: list[LoadResult]
    errors: dict[int, str]  # file id -> what went wrong (the file stays received, see file_errors)
    seconds: float

    def summary(self) -> dict:
        by_status: dict[str, int] = {}
        for r in self.results:
            by_status[r.status] = by_status.get(r.status, 0) + 1
        return {
            "files": len(self.results) + len(self.errors),
            "by_status": by_status,
            "calls_loaded": sum(r.loaded for r in self.results),
            "calls_flagged": sum(r.flagged for r in self.results),
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
    error: FormatError | None = None  # not a file of its type: rejected by the loader
    failure: Exception | None = None  # could not be prepared at all: raised before loading
    accepted_by: str | None = None  # an operator accepts it over its threshold

    def prepared(self):
        if self.error is not None:
            raise self.error
        yield from self.chunks or []

    def load(self, engine, store, say, kinds) -> list[LoadResult]:
        if self.failure is not None:
            raise self.failure
        return [
            load_file(
                engine,
                store,
                self.id,
                prepared=self.prepared(),
                progress=say,
                kinds=kinds,
                accepted_by=self.accepted_by,
            )
        ]


def process_batch(
    engine: Engine,
    store: RawStore,
    file_ids: list[int],
    *,
    run_id: str | None = None,
    progress: Callable[[str], None] | None = None,
    accept: Collection[int] = (),
    accepted_by: str | None = None,
) -> BatchOutcome:
    """Process ``file_ids``; one file's failure never stops the others (see
    :func:`process_tree`). A file another worker holds, or that is no longer received, is skipped.

    ``run_id``: the processing run that claimed the files. The batch claims them again (a retry
    of its task may come after the claims were released) and skips those another run took;
    while it works, a heartbeat renews the claims (:class:`cdrflow.intake.claims.Heartbeat`);
    whatever happens, the claims are released at the end, so a file left received is taken by
    the next run at once. Without ``run_id``, whoever's claims on ``file_ids`` are renewed and
    released. ``accept``: files an operator accepts (``accepted_by``: who) even over their
    threshold, their quarantine kept."""
    say = progress or log.info
    started = time.perf_counter()
    results: list[LoadResult] = []
    errors: dict[int, str] = {}
    todo = list(file_ids)
    if run_id is not None:
        todo = [c.id for c in claims.claim(engine, run_id, file_ids=todo)]
        for other in sorted(set(file_ids) - set(todo)):
            results.append(LoadResult(other, "skipped", message="not received any more, or claimed by another run"))
    try:
        with claims.Heartbeat(engine, run_id, todo):
            _process(engine, store, todo, results, errors, say, dict.fromkeys(accept, accepted_by or "an operator"))
    finally:
        try:  # the run's claims on the whole batch: a killed earlier try may have loaded some
            claims.release(engine, list(file_ids) if run_id is not None else todo, run_id)
        except Exception as exc:  # the warehouse is away: the claims expire with their lease
            log.warning("claims of files %s not released: %s", todo, one_line(exc))
    outcome = BatchOutcome(results, errors, time.perf_counter() - started)
    s = outcome.summary()
    say(
        f"batch of {s['files']} file(s) in {s['seconds']}s: {s['by_status']}, {s['calls_loaded']:,} calls "
        f"loaded, {s['rows_rejected']:,} rows rejected, {s['duplicates']:,} duplicates, {len(errors)} error(s)"
    )
    return outcome


def _process(engine, store, file_ids: list[int], results: list, errors: dict, say, accept: dict[int, str]) -> None:
    def settle(r: LoadResult) -> None:
        if r.status == "error":
            errors[r.file_id] = r.message
        else:
            results.append(r)

    def run(file_id: int, fn: Callable[[], list[LoadResult]]) -> None:
        for r in _guarded(engine, store, file_id, fn):
            settle(r)

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
            run(row.id, functools.partial(_tree, engine, store, row.id, say, accept.get(row.id)))
            continue
        try:
            archive = _is_archive(store, row.stored_file_id)
        except Exception as exc:  # its bytes are missing or unreadable: that file's outcome
            settle(file_errors.after_exception(engine, store, row.id, exc))
            continue
        if archive:
            run(row.id, functools.partial(_unpack, engine, store, row.id, say, accept.get(row.id)))
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
        args=(store, small, known, kinds, ready, failures),
        name="cdrflow-parse-ahead",
        daemon=True,
    )
    parser.start()
    files: queue.Queue[_Small | None] = queue.Queue(maxsize=LOADERS * 2)

    def load_prepared() -> None:
        while (f := files.get()) is not None:
            f.accepted_by = accept.get(f.id)
            run(f.id, lambda: f.load(engine, store, say, kinds))

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
    if failures:  # not an Exception (KeyboardInterrupt, SystemExit): the claims are released
        raise failures[0]


def _prepare_groups(store, rows, known, kinds, ready: queue.Queue, failures: list) -> None:
    """Prepare small files in groups of one file type; hand each group over."""
    pending: dict[str, list] = {}
    sizes: dict[str, int] = {}
    try:
        for row in rows:
            pending.setdefault(row.file_type, []).append(row)
            sizes[row.file_type] = sizes.get(row.file_type, 0) + row.file_size
            if sizes[row.file_type] >= GROUP_BYTES:
                sizes.pop(row.file_type)
                ready.put(_prepared_apart(store, pending.pop(row.file_type), known, kinds))
        for group in pending.values():
            ready.put(_prepared_apart(store, group, known, kinds))
    except BaseException as exc:  # handed to the main thread
        failures.append(exc)
    finally:
        ready.put(None)


def _prepared_apart(store, rows, known, kinds) -> list[_Small]:
    """:func:`_prepared`; when the group raises, its files are prepared one by one, so that only
    the file at fault fails (its exception is raised when it would be loaded)."""
    try:
        return _prepared(store, rows, known, kinds)
    except Exception as exc:
        if len(rows) == 1:
            return [_Small(rows[0].id, rows[0].file_type, failure=exc)]
        log.warning(
            "%d %s files could not be prepared together (%s); preparing them one by one",
            len(rows),
            rows[0].file_type,
            one_line(exc),
        )
    return [f for row in rows for f in _prepared_apart(store, [row], known, kinds)]


def _prepared(store, rows, known, kinds) -> list[_Small]:
    file_type = rows[0].file_type
    options, policies = {}, {}
    failed = []
    for carrier in {row.carrier for row in rows}:
        try:
            options[carrier] = options_for(known[carrier], file_type)
            policies[carrier] = policy_for(
                file_type, options[carrier].mapping, known[carrier].config.get("checks"), where=f"carrier {carrier}"
            )
        except CdrflowError as exc:  # e.g. a mapping file that does not load: that carrier's files
            failed += [_Small(row.id, file_type, failure=exc) for row in rows if row.carrier == carrier]
    rows = [row for row in rows if row.carrier in policies]
    if not rows:
        return failed
    datas = []
    for row in rows:
        with store.open(row.stored_file_id) as stream:
            datas.append(stream.read())
    prepared = small_files.prepare(
        datas, [r.carrier for r in rows], [r.id for r in rows], file_type, options, kinds, policies
    )
    return failed + [_Small(row.id, file_type, p.chunks, p.error) for row, p in zip(rows, prepared)]
