"""Load a registered file: parse, validate, and copy its calls into the warehouse, exactly once.

Everything a file changes commits in ONE transaction: its calls, its quarantined rows, its
counts and its status. A crash anywhere rolls it all back and leaves the file ``received``,
ready to run again. The file's registry row is locked (``FOR UPDATE SKIP LOCKED``) for the
whole transaction, so two workers never load the same file; loads of one carrier are
serialised by an advisory lock so that the same call in two files is found, not raced.

Speed: a staging COPY plus ``INSERT ... ON CONFLICT`` into the partitioned table costs about
2.8x a plain COPY. Instead each chunk's keys are looked up in ``calls`` (primary key index),
the new rows are COPYed straight into their month partitions, and a writer thread does that
while the main thread parses and validates the next chunk (PostgreSQL works on the other core).
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg2 import sql as pgsql
from sqlalchemy import Engine, text

from cdrflow import carriers, settings, validation
from cdrflow.errors import CdrflowError
from cdrflow.formats import get_parser
from cdrflow.formats.base import CANONICAL_COLUMNS, FormatError, ParseOptions, RowProblem
from cdrflow.rawstore import RawStore
from cdrflow.registry import append_log, set_status

log = logging.getLogger(__name__)

CALL_COLUMNS = ["carrier", "file_id", "line_number"] + CANONICAL_COLUMNS
SAMPLE_LINES = 5


@dataclass
class LoadResult:
    file_id: int
    status: str  # loaded | failed | rejected | skipped
    lines: int = 0
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    message: str = ""
    failed_expectations: dict[str, int] = field(default_factory=dict)


class FileBusy(CdrflowError):
    """Another worker holds the file (or it is not in a loadable status)."""


@dataclass
class _Batch:
    """A chunk ready for the writer: COPY payloads per month partition, built by the main
    thread so that the writer thread does nothing but talk to PostgreSQL."""

    frame: pd.DataFrame
    maybe_seen: np.ndarray  # rows whose key may repeat an earlier chunk of this file
    day: pd.Series  # UTC day of each row
    day_key: dict  # day -> 'YYYY-MM-DD'
    per_day: dict[str, int]
    payloads: list[tuple[str, int, io.BytesIO]]  # (YYYY-MM, rows, COPY csv)

    @classmethod
    def prepare(cls, frame: pd.DataFrame, maybe_seen: np.ndarray, carrier: str, file_id: int) -> _Batch:
        day = frame["start_time"].dt.floor("D")
        day_key = {d: d.strftime("%Y-%m-%d") for d in day.unique()}  # a handful of days
        per_day = {day_key[d]: int(n) for d, n in day.value_counts().items()}
        payloads = []
        for month in sorted({k[:7] for k in day_key.values()}):
            part = frame[day.isin([d for d, k in day_key.items() if k.startswith(month)]).to_numpy()]
            if len(part):
                payloads.append((month, len(part), _copy_payload(part, carrier, file_id)))
        return cls(frame, maybe_seen, day, day_key, per_day, payloads)


class _Writer(threading.Thread):
    """Owns the database connection while loading: key lookups and COPYs, chunk by chunk.

    Each item is a frame plus a mask of rows whose key must be checked against ``calls``
    (possible repeats of earlier chunks of this file). Rows on days that already hold calls
    of this carrier (``call_days``) are checked too; all other rows are new by construction.
    """

    def __init__(self, raw_conn, carrier: str, file_id: int):
        super().__init__(daemon=True)
        self.conn, self.carrier, self.file_id = raw_conn, carrier, file_id
        self.inbox: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self.loaded = 0
        self.duplicates = 0
        self.per_day: dict[str, int] = {}
        self.error: BaseException | None = None
        self.partitions: dict[str, str] = {}
        self.busy_days: dict[str, bool] = {}

    def run(self) -> None:
        try:
            while (batch := self.inbox.get()) is not None:
                self._write(batch)
        except BaseException as exc:  # handed to the main thread, which rolls back
            self.error = exc
            while self.inbox.get() is not None:  # drain so the producer never blocks
                pass

    def _days_with_calls(self, cur, days: list[str]) -> set[str]:
        unknown = [d for d in days if d not in self.busy_days]
        if unknown:
            cur.execute("SELECT day::text FROM call_days WHERE carrier = %s AND day = ANY(%s::date[])",
                        (self.carrier, unknown))
            found = {r[0] for r in cur.fetchall()}
            self.busy_days.update({d: d in found for d in unknown})
        return {d for d in days if self.busy_days[d]}

    def _existing(self, cur, frame: pd.DataFrame) -> np.ndarray:
        """Mask of the rows of ``frame`` whose key is already in calls (primary key probes)."""
        ids = frame["carrier_call_id"].to_numpy(dtype=object)
        starts = frame["start_time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00").to_numpy(dtype=object)
        cur.execute(
            "SELECT k.i FROM unnest(%s::text[], %s::timestamptz[]) WITH ORDINALITY AS k(id, st, i) "
            "JOIN calls c ON c.carrier = %s AND c.carrier_call_id = k.id AND c.start_time = k.st",
            (list(ids), list(starts), self.carrier))
        mask = np.zeros(len(frame), dtype=bool)
        mask[np.array([r[0] - 1 for r in cur.fetchall()], dtype=np.int64)] = True
        return mask

    def _partition(self, cur, month_key: str) -> str:
        if month_key not in self.partitions:
            cur.execute("SELECT cdrflow_ensure_calls_partition(%s::timestamptz)", (month_key + "-01 00:00:00+00",))
            self.partitions[month_key] = cur.fetchone()[0]
        return self.partitions[month_key]

    def _write(self, batch: _Batch) -> None:
        frame, day = batch.frame, batch.day
        with self.conn.cursor() as cur:
            busy = self._days_with_calls(cur, sorted(batch.day_key.values()))
            check = batch.maybe_seen
            if busy:
                check = check | day.isin([d for d, k in batch.day_key.items() if k in busy]).to_numpy()
            if check.any():
                existing = np.zeros(len(frame), dtype=bool)
                existing[check] = self._existing(cur, frame[check])
                if existing.any():  # rare: rebuild the payloads without those rows
                    self.duplicates += int(existing.sum())
                    batch = _Batch.prepare(frame[~existing], batch.maybe_seen[~existing],
                                           self.carrier, self.file_id)
            for day_key, count in batch.per_day.items():
                self.per_day[day_key] = self.per_day.get(day_key, 0) + count
            for month, rows, payload in batch.payloads:
                cur.copy_expert(
                    pgsql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
                        pgsql.Identifier(self._partition(cur, month)),
                        pgsql.SQL(", ").join(map(pgsql.Identifier, CALL_COLUMNS))),
                    payload, size=1 << 20)
                self.loaded += rows

    def record_days(self) -> None:
        """Add this file's calls to call_days (same transaction as the calls)."""
        if not self.per_day:
            return
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO call_days (carrier, day, calls) "
                "SELECT %s, d, n FROM unnest(%s::date[], %s::bigint[]) AS t(d, n) "
                "ON CONFLICT (carrier, day) DO UPDATE SET calls = call_days.calls + EXCLUDED.calls",
                (self.carrier, list(self.per_day), list(self.per_day.values())))


class _SeenKeys:
    """Keys of the calls already read from this file, as 64-bit hashes (8 bytes a call, so
    5,000,000 calls take 40 MB, not the ~1 GB a set of tuples would). A hash hit is only a
    candidate: the writer confirms it against the rows already COPYed.

    The hashes live in sorted runs merged like a binary counter (a small log-structured
    merge), so adding a chunk and probing it cost O(n log n) over the whole file instead of
    re-sorting everything seen at every chunk.
    """

    def __init__(self):
        self.runs: list[np.ndarray] = []

    def _probe(self, hashes: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(hashes), dtype=bool)
        for run in self.runs:
            at = np.searchsorted(run, hashes)
            at[at == len(run)] = 0
            hit |= run[at] == hashes
        return hit

    @staticmethod
    def _sorted_unique(values: np.ndarray) -> np.ndarray:
        values = np.sort(values, kind="stable")  # radix sort for integers
        return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values

    def _add(self, hashes: np.ndarray) -> None:
        run = self._sorted_unique(hashes)
        while self.runs and len(self.runs[-1]) <= len(run):
            run = self._sorted_unique(np.concatenate((self.runs.pop(), run)))
        self.runs.append(run)

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, int]:
        """Drop exact repeats inside ``frame``; return it, the candidate mask, repeats dropped."""
        keys = frame[["carrier_call_id", "start_time"]]
        repeat = keys.duplicated().to_numpy()
        if repeat.any():
            frame, keys = frame[~repeat], keys[~repeat]
        hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        candidates = self._probe(hashes)
        self._add(hashes)
        return frame, candidates, int(repeat.sum())


def _copy_payload(frame: pd.DataFrame, carrier: str, file_id: int) -> io.BytesIO:
    n = len(frame)
    table = pa.Table.from_pandas(frame[["line_number"] + CANONICAL_COLUMNS], preserve_index=False)
    # Arrow formats time-zone-aware timestamps slowly; naive UTC ones are written several times
    # faster and read back as UTC because the loading transaction runs with TimeZone = UTC.
    for i, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            naive = table.column(i).cast(pa.timestamp("us"))
            try:  # whole seconds (the usual case) make shorter text for PostgreSQL to parse
                naive = naive.cast(pa.timestamp("s"), safe=True)
            except pa.ArrowInvalid:
                pass
            table = table.set_column(i, column.name, naive)
    table = table.add_column(0, "file_id", pa.array(np.full(n, file_id, dtype=np.int64)))
    table = table.add_column(0, "carrier", pa.array([carrier] * n, pa.string()))
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    buffer.seek(0)
    return buffer


class _Quarantine:
    """Rejected rows, spooled as COPY text until the end of the file."""

    def __init__(self, file_id: int):
        self.file_id = file_id
        self.rows: list[tuple[int, str | None, bytes | None, list[str]]] = []

    def add(self, line_number: int, raw_text: str | None, reasons: list[str], raw_bytes: bytes | None = None):
        self.rows.append((line_number, raw_text, raw_bytes, reasons))

    def __len__(self) -> int:
        return len(self.rows)

    def write(self, cur) -> None:
        if not self.rows:
            return
        frame = pd.DataFrame({
            "file_id": [self.file_id] * len(self.rows),
            "line_number": [r[0] for r in self.rows],
            "raw_text": [None if r[1] is None else r[1].replace("\x00", "\ufffd") for r in self.rows],
            "raw_bytes": ["\\x" + r[2].hex() if r[2] is not None else None for r in self.rows],
            "reasons": ["{" + ",".join('"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                       for x in r[3]) + "}" for r in self.rows],
        })
        buffer = io.BytesIO()
        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                        pacsv.WriteOptions(include_header=False))
        buffer.seek(0)
        cur.copy_expert("COPY rejected_rows (file_id, line_number, raw_text, raw_bytes, reasons) "
                        "FROM STDIN WITH (FORMAT csv)", buffer, size=1 << 20)


@dataclass
class CheckedChunk:
    calls: pd.DataFrame  # rows that parsed and passed validation
    rejected: list[RowProblem]  # rows that did not, with reasons
    summary: list  # validation summary of this chunk
    lines: int  # records read in this chunk
    repeats: int = 0  # records that repeat an earlier record of the chunk (same call id and start)


def options_for(carrier: carriers.Carrier, file_type: str) -> ParseOptions:
    """Parse options from the carrier's configuration (time zone, encoding, mapping)."""
    mapping = None
    if file_type == "mapped":
        if not carrier.mapping:
            raise CdrflowError(f"carrier {carrier.code} uses type 'mapped' but names no mapping file")
        from cdrflow.formats.mapped import load_mapping

        path = Path(carrier.mapping)
        mapping = load_mapping(path if path.is_absolute() else settings.REPO_DIR / path)
    return ParseOptions(timezone=carrier.config.get("timezone", "UTC"),
                        encoding=carrier.config.get("encoding", "utf-8"), mapping=mapping)


def parsed_chunks(stream: BinaryIO, file_type: str, options: ParseOptions) -> Iterator[CheckedChunk]:
    """Parse ``stream`` as ``file_type``, not yet validated: each chunk's parse problems are in
    ``rejected``, exact repeats of a call inside the chunk are dropped and counted.
    :class:`FormatError` propagates."""
    stream = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    for chunk in get_parser(file_type).parse(stream, options):
        frame = chunk.calls
        # The same call delivered twice is a duplicate, not a broken row: drop exact repeats
        # before the suite checks that call ids are unique within the file.
        repeat = frame.duplicated(["carrier_call_id", "start_time"]).to_numpy()
        if repeat.any():
            frame = frame[~repeat]
        yield CheckedChunk(frame, list(chunk.problems), [], len(chunk.calls) + len(chunk.problems),
                           int(repeat.sum()))


def _apply(chunk: CheckedChunk, checked: validation.ChunkValidation) -> CheckedChunk:
    """Move the rows that failed an expectation from ``calls`` to ``rejected``."""
    frame = chunk.calls
    rejected = list(chunk.rejected)
    if checked.bad_rows:
        bad = frame["line_number"].isin(list(checked.bad_rows)).to_numpy()
        rejected += [RowProblem(int(n), t, checked.bad_rows[int(n)])
                     for n, t in zip(frame["line_number"][bad], frame["raw_text"][bad])]
        frame = frame[~bad]
    return CheckedChunk(frame, rejected, checked.summary, chunk.lines, chunk.repeats)


def validated_chunks(stream: BinaryIO, file_type: str, options: ParseOptions) -> Iterator[CheckedChunk]:
    """Parse ``stream`` as ``file_type`` and validate each chunk (Great Expectations).

    Rows that fail parsing or an expectation come back in ``rejected`` with their line
    numbers and the names of what they failed. :class:`FormatError` propagates.
    """
    for chunk in parsed_chunks(stream, file_type, options):
        if len(chunk.calls):
            chunk = _apply(chunk, validation.validate_chunk(chunk.calls, file_type))
        yield chunk


def validate_together(files: list[list[CheckedChunk]], file_type: str) -> list[list[CheckedChunk]]:
    """Validate the parsed chunks of several small files of one type in ONE suite run.

    A Great Expectations run costs about a third of a second whatever its size, which would
    dominate a file of a thousand calls; a day of thousands of small files is validated in
    groups instead. Results are exactly those of validating each file alone: rows are keyed
    by their position in the group, and call ids are made file-specific for the uniqueness
    expectation (unique within a file, not across files).
    """
    parts, where = [], []
    for f, chunks in enumerate(files):
        for c, chunk in enumerate(chunks):
            if len(chunk.calls):
                parts.append(chunk.calls.assign(
                    carrier_call_id=(str(f) + "\x1f" + chunk.calls["carrier_call_id"]).where(
                        chunk.calls["carrier_call_id"].notna())))
                where.append((f, c, len(chunk.calls)))
    if not parts:
        return files
    combined = pd.concat(parts, ignore_index=True)
    original_lines = combined["line_number"].to_numpy()
    combined["line_number"] = np.arange(len(combined))
    checked = validation.validate_chunk(combined, file_type)
    out = [list(chunks) for chunks in files]
    offset = 0
    for f, c, n in where:
        bad = {int(original_lines[i]): reasons for i, reasons in checked.bad_rows.items() if offset <= i < offset + n}
        # the group's summary counts for each file: its own unexpected rows only
        counts: dict[str, int] = {}
        for reasons in bad.values():
            for name in reasons:
                counts[name] = counts.get(name, 0) + 1
        summary = [validation.ValidationSummary(s.expectation, counts.get(s.expectation, 0) == 0,
                                                counts.get(s.expectation, 0), s.column) for s in checked.summary]
        out[f][c] = _apply(out[f][c], validation.ChunkValidation(bad, summary))
        offset += n
    return out


def load_file(engine: Engine, store: RawStore, file_id: int, *,
              progress: Callable[[str], None] | None = None,
              prepared: Iterable[CheckedChunk] | None = None) -> LoadResult:
    """Parse, validate and load registered file ``file_id`` in one transaction.

    Raises :class:`FileBusy` when another worker holds the file or it is not ``received`` or
    ``failed``. Any exception rolls everything back (the file stays as it was).
    ``prepared``: the file's chunks, already parsed and validated (see :func:`validate_together`);
    they may raise :class:`FormatError` while iterated, as parsing would.

    A file that was loaded before and re-queued by an operator loses its earlier calls in the
    same transaction, so a re-run replaces them instead of counting them as duplicates.
    """
    started = time.perf_counter()
    say = progress or log.info
    with engine.connect() as conn, conn.begin():
        row = conn.execute(text(
            "SELECT carrier, file_type, stored_file_id, file_name, calls_loaded FROM cdr_files "
            "WHERE id = :id AND status IN ('received', 'failed') FOR UPDATE SKIP LOCKED"),
            {"id": file_id}).first()
        if row is None:
            raise FileBusy(f"file {file_id} is being loaded by another worker or is not "
                           "in a loadable status (received or failed)")
        conn.execute(text("SET LOCAL TimeZone = 'UTC'"))  # COPY payloads carry naive UTC times
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('cdrflow.load.' || :c))"),
                     {"c": row.carrier})
        conn.execute(text("DELETE FROM rejected_rows WHERE file_id = :id"), {"id": file_id})
        carrier = carriers.get(conn, row.carrier)
        if not row.file_type:
            raise CdrflowError(f"file {file_id} has no file type and carrier {row.carrier} names none")
        set_status(conn, file_id, "processing", f"loading as {row.file_type}")
        if row.calls_loaded:
            _forget_previous_load(conn, file_id)
        if prepared is None:
            validation.warm_up(row.file_type)
            options = options_for(carrier, row.file_type)
            prepared = _parse_stored(store, row.stored_file_id, row.file_type, options)
        result = _load(conn.connection.driver_connection, file_id, row.file_name, carrier, prepared, say)
        result.seconds = time.perf_counter() - started
        set_status(conn, file_id, result.status, result.message, lines=result.lines, processed=True)
        conn.execute(text("UPDATE cdr_files SET calls_loaded = :l, calls_rejected = :r, "
                          "calls_duplicate = :d WHERE id = :id"),
                     {"l": result.loaded, "r": result.rejected, "d": result.duplicates, "id": file_id})
    say(f"file {file_id} {row.file_name}: {result.status}: {result.message.splitlines()[0] if result.message else ''} "
        f"({result.seconds:.1f}s)")
    return result


def _parse_stored(store: RawStore, key: str, file_type: str, options: ParseOptions) -> Iterator[CheckedChunk]:
    with store.open(key) as stream:
        yield from validated_chunks(stream, file_type, options)


_FORGET = text("""
WITH gone AS (
    DELETE FROM calls WHERE file_id = :id
    RETURNING carrier, (start_time AT TIME ZONE 'UTC')::date AS day
), per_day AS (SELECT carrier, day, count(*) AS n FROM gone GROUP BY carrier, day)
UPDATE call_days d SET calls = d.calls - p.n FROM per_day p
WHERE d.carrier = p.carrier AND d.day = p.day
""")


def _forget_previous_load(conn, file_id: int) -> None:
    """Remove the calls an earlier load of this file wrote (operator re-run of a loaded file)."""
    conn.execute(_FORGET, {"id": file_id})
    append_log(conn, file_id, "re-run: the calls of the earlier load are replaced")


def _load(dbapi, file_id, file_name, carrier, chunks: Iterable[CheckedChunk], say) -> LoadResult:
    result = LoadResult(file_id, "loaded")
    quarantine = _Quarantine(file_id)
    with dbapi.cursor() as cur:
        cur.execute("SAVEPOINT calls")
    writer = _Writer(dbapi, carrier.code, file_id)
    writer.start()
    seen = _SeenKeys()
    summaries = []
    started = last_report = time.perf_counter()
    try:
        for chunk in chunks:
            for p in chunk.rejected:
                quarantine.add(p.line_number, p.raw_text, p.reasons, p.raw_bytes)
            result.lines += chunk.lines
            result.duplicates += chunk.repeats
            if chunk.summary:
                summaries.append(chunk.summary)
            frame, candidates, repeats = seen.split(chunk.calls)
            result.duplicates += repeats
            if writer.error:
                break
            if len(frame):  # the raw text is only needed for the quarantine, already done
                writer.inbox.put(_Batch.prepare(frame.drop(columns=["raw_text"]), candidates,
                                                carrier.code, file_id))
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                say(f"file {file_id} {file_name}: {result.lines:,} lines read, {writer.loaded:,} calls "
                    f"written, {result.lines / (last_report - started):,.0f} lines/s")
    except FormatError as exc:
        result.status, result.message = "rejected", str(exc)
    finally:
        writer.inbox.put(None)
        writer.join()
    if writer.error:
        raise writer.error
    writer.record_days()
    result.loaded = writer.loaded
    result.duplicates += writer.duplicates
    result.rejected = len(quarantine)
    if summaries:
        merged = validation.merge_summaries(summaries)
        result.failed_expectations = {s.expectation: s.unexpected_count for s in merged if not s.success}
        result.message += validation.format_summary(merged)
    with dbapi.cursor() as cur:
        if result.status == "loaded" and result.lines and result.rejected / result.lines > carrier.reject_threshold:
            result.status = "failed"
            samples = "; ".join(f"line {r[0]}: {r[3]}" for r in quarantine.rows[:SAMPLE_LINES])
            result.message = (f"{result.rejected} of {result.lines} lines rejected "
                              f"({result.rejected / result.lines:.1%} > threshold "
                              f"{carrier.reject_threshold:.0%}); nothing loaded. Failing: "
                              f"{result.failed_expectations or 'parse errors'}. Samples: {samples}\n"
                              + result.message)
        if result.status != "loaded":
            cur.execute("ROLLBACK TO SAVEPOINT calls")
            result.loaded = result.duplicates = 0
        else:
            result.message = (f"{result.lines} lines: {result.loaded} calls loaded, {result.rejected} "
                              f"rejected, {result.duplicates} duplicates\n" + result.message)
        quarantine.write(cur)
    return result
