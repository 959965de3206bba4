"""Load a registered file: parse, validate, and copy its calls into the warehouse, exactly once.

Everything a file changes commits in ONE transaction: its calls, its quarantined rows, its
counts and its status. A crash anywhere rolls it all back and leaves the file ``received``,
ready to run again. The file's registry row is locked (``FOR UPDATE SKIP LOCKED``) for the
whole transaction, so two workers never load the same file. Files of one carrier may load at
the same time: the same call in two of them is caught by the primary key (the second COPY
waits for the first file's transaction, then the key refuses the row, see ``_Writer.write``).

Speed: a staging COPY plus ``INSERT ... ON CONFLICT`` into the partitioned table costs about
2.8x a plain COPY. Instead each chunk is COPYed straight into its month partitions under a
savepoint (keys are looked up only when the primary key refuses a row), and a writer thread
does that while the main thread parses and validates the next chunk (PostgreSQL works on the
other core).
What PostgreSQL does per row is kept small: the rows go in COPY's binary format (no parsing
of timestamps and numbers) and in primary key order (index insertions next to each other,
about half the index work of random order); see :func:`_copy_payload`. Chunks are validated
in groups (:func:`validated_chunks`), as a Great Expectations run has a fixed cost.
"""

from __future__ import annotations

import io
import logging
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import psycopg2.errors
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
_STR = pd.StringDtype("pyarrow", na_value=np.nan)
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
class Batch:
    """A chunk ready for the writer: COPY payloads per month partition, built by the main
    thread so that the writer thread does nothing but talk to PostgreSQL."""

    frame: pd.DataFrame
    per_day: dict[str, int]
    payloads: list[tuple[str, int, str, BinaryIO]]  # (YYYY-MM, rows, COPY format, data)

    @classmethod
    def prepare(cls, frame: pd.DataFrame, carrier: str, file_id: int,
                kinds: dict[str, str] | None = None) -> Batch:
        day = _utc_days(frame["start_time"])
        per_day = day_counts(day)
        months: dict[str, list[int]] = {}  # YYYY-MM -> its days
        for key in per_day:
            months.setdefault(key[:7], []).append(np.datetime64(key, "D").astype(np.int64))
        payloads = []
        for month in sorted(months):
            part = frame if len(months) == 1 else frame[np.isin(day, months[month])]
            if len(part):
                payloads.append((month, len(part), *_copy_payload(part, carrier, file_id, kinds)))
        return cls(frame, per_day, payloads)


def day_counts(day: np.ndarray) -> dict[str, int]:
    """Calls per UTC day ("YYYY-MM-DD", in order) from days since 1970 (:func:`_utc_days`)."""
    days, counts = np.unique(day, return_counts=True)  # a handful of days
    return {str(np.datetime64(int(d), "D")): int(n) for d, n in zip(days, counts)}


def _utc_days(start: pd.Series) -> np.ndarray:
    """UTC day of each timestamp, as days since 1970-01-01 (naive timestamps are UTC)."""
    if start.dt.tz is not None:
        start = start.dt.tz_convert("UTC").dt.tz_localize(None)
    return start.to_numpy("datetime64[D]").astype(np.int64)


class _Writer(threading.Thread):
    """Owns the database connection while loading: COPYs (and, when the primary key refuses
    a row, key lookups), chunk by chunk. A call that repeats an earlier chunk of this file, an
    earlier file or a file loading alongside is refused by the key in every case."""

    def __init__(self, raw_conn, carrier: str, file_id: int, kinds: dict[str, str] | None = None):
        super().__init__(daemon=True)
        self.conn, self.carrier, self.file_id, self.kinds = raw_conn, carrier, file_id, kinds
        self.inbox: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
        self.loaded = 0
        self.duplicates = 0
        self.per_day: dict[str, int] = {}
        self.error: BaseException | None = None
        self.partitions: dict[str, str] = {}

    def run(self) -> None:
        try:
            while (batch := self.inbox.get()) is not None:
                self.write(batch)
        except BaseException as exc:  # handed to the main thread, which rolls back
            self.error = exc
            while self.inbox.get() is not None:  # drain so the producer never blocks
                pass

    def _existing(self, cur, frame: pd.DataFrame) -> np.ndarray:
        """Mask of the rows of ``frame`` whose key is already in calls (primary key probes)."""
        ids = frame["carrier_call_id"].to_numpy(dtype=object)
        starts = frame["start_time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00").to_numpy(dtype=object)
        # One primary-key probe per key (LATERAL ... LIMIT 1 is always a nested loop). A plain
        # join lets the planner pick a merge or hash join over the whole partition when its
        # statistics are stale (a partition filled since the last ANALYZE looks tiny): that
        # made each small file on a busy day scan every call of the month (seen: 0.15 s at
        # 150k calls, growing with the month).
        cur.execute(
            "SELECT k.i FROM unnest(%s::text[], %s::timestamptz[]) WITH ORDINALITY AS k(id, st, i) "
            "CROSS JOIN LATERAL (SELECT 1 FROM calls c WHERE c.carrier = %s AND c.carrier_call_id = k.id "
            "AND c.start_time = k.st LIMIT 1) AS hit",
            (list(ids), list(starts), self.carrier))
        mask = np.zeros(len(frame), dtype=bool)
        mask[np.array([r[0] - 1 for r in cur.fetchall()], dtype=np.int64)] = True
        return mask

    def _partition(self, cur, month_key: str) -> str:
        if month_key not in self.partitions:
            cur.execute("SELECT cdrflow_ensure_calls_partition(%s::timestamptz)", (month_key + "-01 00:00:00+00",))
            self.partitions[month_key] = cur.fetchone()[0]
        return self.partitions[month_key]

    def write(self, batch: Batch) -> None:
        frame = batch.frame
        with self.conn.cursor() as cur:
            for month, *_ in batch.payloads:  # outside the savepoint below: created for good
                self._partition(cur, month)
            # Optimistic: a call that is already in the warehouse (from an earlier file, from
            # one loading at this moment, or from an earlier chunk of this file) is rare, and the
            # primary key checks every row during COPY anyway. Copy first; only when the key
            # refuses a row, roll back to the savepoint, look the keys up and copy the rest.
            # A file loading at the same moment with the same call holds this COPY until it
            # commits (then the key refuses the row) or rolls back (then the row goes in).
            # The lookup sees committed calls only: a file loading alongside may commit one
            # more of these keys before the next COPY, hence the loop (each round either
            # succeeds or waited for another file's commit).
            for attempt in range(1, _COPY_ATTEMPTS + 1):
                cur.execute("SAVEPOINT cdrflow_batch")
                try:
                    self._copy(cur, batch)
                except psycopg2.errors.UniqueViolation:
                    cur.execute("ROLLBACK TO SAVEPOINT cdrflow_batch")
                    if attempt == _COPY_ATTEMPTS:
                        raise
                    existing = self._existing(cur, frame)
                    self.duplicates += int(existing.sum())
                    frame = frame[~existing]
                    batch = Batch.prepare(frame, self.carrier, self.file_id, self.kinds)
                else:
                    cur.execute("RELEASE SAVEPOINT cdrflow_batch")
                    break
            for day_key, count in batch.per_day.items():
                self.per_day[day_key] = self.per_day.get(day_key, 0) + count
            self.loaded += sum(rows for _, rows, _, _ in batch.payloads)

    def _copy(self, cur, batch: Batch) -> None:
        for month, _rows, fmt, payload in batch.payloads:
            payload.seek(0)
            cur.copy_expert(
                pgsql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT {})").format(
                    pgsql.Identifier(self._partition(cur, month)),
                    pgsql.SQL(", ").join(map(pgsql.Identifier, CALL_COLUMNS)), pgsql.SQL(fmt)),
                payload, size=_READ_BYTES)

    def record_days(self) -> None:
        """Add this file's calls to call_days (same transaction as the calls)."""
        if not self.per_day:
            return
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO call_days (carrier, day, calls) "
                "SELECT %s, d, n FROM unnest(%s::date[], %s::bigint[]) AS t(d, n) "
                "ON CONFLICT (carrier, day) DO UPDATE SET calls = call_days.calls + EXCLUDED.calls",
                (self.carrier, sorted(self.per_day), [self.per_day[d] for d in sorted(self.per_day)]))
        # days in order: two files of a carrier committing at once lock call_days rows alike


def _repeats(frame: pd.DataFrame, hashes: np.ndarray | None = None, owner: np.ndarray | None = None) -> np.ndarray:
    """Mask of the rows whose (carrier_call_id, start_time) repeats an earlier row of ``frame``
    (what ``DataFrame.duplicated`` says, which only runs on rows whose key hashes collide).
    ``owner``: the file of each row, when ``frame`` holds several files (a repeat is a repeat
    within its own file; pass ``hashes`` that include the owner, see :func:`_owned_hashes`)."""
    hashes = _key_hashes(frame) if hashes is None else hashes
    repeat = np.zeros(len(frame), dtype=bool)
    ordered = np.sort(hashes)
    same = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(same):  # a repeat, or (rarely) two keys with one hash
        twice = np.isin(hashes, same)
        keys = frame[["carrier_call_id", "start_time"]][twice]
        if owner is not None:
            keys = keys.assign(_owner=owner[twice])
        repeat[twice] = keys.duplicated().to_numpy()
    return repeat


def _owned_hashes(frame: pd.DataFrame, owner: np.ndarray) -> np.ndarray:
    return _key_hashes(frame) ^ _mix64(owner.astype(np.uint64) + np.uint64(1))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, on arrays of uint64 (arithmetic wraps around)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _key_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's (carrier_call_id, start_time), vectorised over the bytes of
    the ids (pandas' hash of a string column goes through Python objects, ~1 s a million).
    Equal keys always hash alike; the rare different keys that collide only cost a lookup."""
    n = len(frame)
    ids = pa.array(frame["carrier_call_id"], from_pandas=True)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    missing = ids.is_null().to_numpy(zero_copy_only=False) if ids.null_count else np.zeros(n, dtype=bool)
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        ids = pc.cast(ids, pa.string())
    ids = pc.fill_null(ids.cast(pa.large_binary()), pa.scalar(b"", pa.large_binary()))
    _, offsets, data = ids.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64, count=n + 1, offset=ids.offset * 8)
    lengths = np.diff(bounds)
    total = int(bounds[-1] - bounds[0])
    poly = np.zeros(n, dtype=np.uint64)
    if total:
        values = np.frombuffer(data, dtype=np.uint8, count=total, offset=int(bounds[0])).astype(np.uint64)
        starts = bounds[:-1] - bounds[0]
        position = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
        powers = np.cumprod(np.full(int(lengths.max()), 0x100000001B3, dtype=np.uint64))  # wraps mod 2**64
        terms = (values + np.uint64(1)) * powers[position]
        filled = lengths > 0
        poly[filled] = np.add.reduceat(terms, starts[filled])
    ids_hash = _mix64(poly ^ (lengths.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)))
    ids_hash[missing] = np.uint64(0x5A5A5A5A5A5A5A5A)
    start = frame["start_time"]
    micros = start.array.asi8 if hasattr(start.array, "asi8") else \
        pd.util.hash_pandas_object(start, index=False).to_numpy().view(np.int64)
    return _mix64(ids_hash ^ micros.view(np.uint64))


_COPY_ATTEMPTS = 10  # COPY rounds of one batch while concurrent files commit the same calls
_READ_BYTES = 4 << 20  # bytes handed to libpq per call while COPYing


def _copy_payload(frame: pd.DataFrame, carrier: str, file_id: int,
                  kinds: dict[str, str] | None = None) -> tuple[str, BinaryIO]:
    """COPY data for the rows of ``frame``: ``("binary", data)`` when ``kinds`` (the types of
    the calls columns, see :func:`column_kinds`) says every column can be sent in PostgreSQL's
    binary format, else ``("csv", data)``.

    Binary spares PostgreSQL parsing text into timestamps and integers (about a third of its
    work on a COPY of calls), and its rows come in primary key order (:func:`_key_order`).
    The few cases it does not cover (non-empty ``tags`` arrays, integers beyond the column's
    range, a column type it does not know) go as CSV, which makes PostgreSQL accept or refuse
    them exactly as it always did.
    """
    if kinds:
        data = _binary_payload(frame, carrier, file_id, kinds)
        if data is not None:
            return "binary", data
    return "csv", _csv_payload(frame, carrier, file_id)


def _csv_payload(frame: pd.DataFrame, carrier: str, file_id: int) -> io.BytesIO:
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


# --- PostgreSQL's binary COPY format, built column by column with Arrow and numpy ---------
#
# The data is a header, then per row an int16 field count and per field an int32 byte length
# (-1 for NULL) followed by the value in the type's binary form, then an int16 -1. All numbers
# are big-endian. Each column becomes one or two Arrow binary arrays (length prefixes, values);
# one element-wise join of all of them, in the C++ kernel, lays the rows out one after the other.

_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # signature, flags, no extension
_BINARY_TRAILER = struct.pack(">h", -1)
_NULL_FIELD = struct.pack(">i", -1)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 00:00:00 UTC in microseconds since 1970
_INT_TYPES = {"int2": (">i2", 2, -(1 << 15), (1 << 15) - 1), "int4": (">i4", 4, -(1 << 31), (1 << 31) - 1),
              "int8": (">i8", 8, -(1 << 63), (1 << 63) - 1)}
_TEXT_TYPES = {"text", "varchar"}
_KNOWN_TYPES = {"timestamptz", "jsonb", "_text"} | _TEXT_TYPES | set(_INT_TYPES)


def column_kinds(dbapi) -> dict[str, str] | None:
    """The type names (``pg_type.typname``) of the calls columns the loader writes, or None
    when one of them is a type the binary payload does not know (CSV is used then)."""
    with dbapi.cursor() as cur:
        cur.execute("SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                    "WHERE a.attrelid = 'calls'::regclass AND a.attnum > 0 AND NOT a.attisdropped")
        kinds = dict(cur.fetchall())
    if not all(kinds.get(c) in _KNOWN_TYPES for c in CALL_COLUMNS):
        return None
    return {c: kinds[c] for c in CALL_COLUMNS}


def _fixed_width(records: np.ndarray) -> pa.Array:
    """Arrow binary array whose elements are the raw bytes of each element of ``records``."""
    n, width = len(records), records.dtype.itemsize
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets),
                                                       pa.py_buffer(np.ascontiguousarray(records))])


def _with_nulls(piece: pa.Array, valid: np.ndarray) -> pa.Array | bytes:
    if valid.all():
        return piece
    if not valid.any():
        return _NULL_FIELD
    return pc.if_else(pa.array(valid), piece, pa.scalar(_NULL_FIELD, pa.large_binary()))


def _number_field(values: np.ndarray, valid: np.ndarray, kind: str) -> pa.Array | bytes | None:
    be, width, low, high = _INT_TYPES[kind]
    if width < 8 and valid.any():
        present = values[valid]
        if present.min() < low or present.max() > high:
            return None  # out of range: CSV, so that PostgreSQL refuses it as before
    records = np.empty(len(values), dtype=[("length", ">i4"), ("value", be)])
    records["length"] = width
    records["value"] = np.where(valid, values, 0)
    return _with_nulls(_fixed_width(records), valid)


def _binary_fields(column: pd.Series, kind: str) -> list | None:
    """The pieces of one column: Arrow binary arrays (one element per row) or constant bytes."""
    n = len(column)
    if kind in _INT_TYPES:
        if not (pd.api.types.is_integer_dtype(column.dtype) or column.isna().all()):
            return None
        valid = column.notna().to_numpy()
        values = column.to_numpy(dtype=np.int64, na_value=0) if valid.any() else np.zeros(n, np.int64)
        field = _number_field(values, valid, kind)
        return None if field is None else [field]
    if kind == "timestamptz":
        if not pd.api.types.is_datetime64_any_dtype(column.dtype):
            return [_NULL_FIELD] if column.isna().all() else None
        values = column.array  # naive values are UTC (the CSV path reads them so as well)
        if not hasattr(values, "asi8"):
            return None
        if values.unit != "us":
            values = values.as_unit("us")
        valid = ~np.asarray(values.isna())
        micros = np.where(valid, values.asi8, _PG_EPOCH_US)
        return [_with_nulls(_fixed_width(_timestamps(micros - _PG_EPOCH_US)), valid)]
    if kind in _TEXT_TYPES or kind == "jsonb":
        values = pa.array(column, from_pandas=True)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if values.null_count == n:
            return [_NULL_FIELD]
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return None
        values = values.cast(pa.large_binary())
        if values.null_count:
            valid = values.is_valid().to_numpy(zero_copy_only=False)
            values = pc.fill_null(values, pa.scalar(b"", pa.large_binary()))
        else:
            valid = None
        lengths = pc.binary_length(values).to_numpy()
        if kind == "jsonb":  # jsonb's binary form: a version byte (1), then the JSON text
            prefix = np.empty(n, dtype=[("length", ">i4"), ("version", "u1")])
            prefix["length"] = lengths + 1
            prefix["version"] = 1
        else:
            prefix = lengths.astype(">i4")
        prefix = _fixed_width(prefix)
        if valid is not None:
            prefix = _with_nulls(prefix, valid)
        return [prefix, values]
    if kind == "_text":  # arrays: only NULL (every row without tags); others go as CSV
        return [_NULL_FIELD] if column.isna().all() else None
    return None


def _timestamps(values: np.ndarray) -> np.ndarray:
    records = np.empty(len(values), dtype=[("length", ">i4"), ("value", ">i8")])
    records["length"] = 8
    records["value"] = values
    return records


def _constant_field(value, kind: str) -> bytes | None:
    if kind in _INT_TYPES:
        be, width, low, high = _INT_TYPES[kind]
        if not low <= value <= high:
            return None
        return struct.pack(">i", width) + int(value).to_bytes(width, "big", signed=True)
    if kind in _TEXT_TYPES:
        data = value.encode("utf-8")
        return struct.pack(">i", len(data)) + data
    return None


class BinaryCopy:
    """A file-like reader over the binary COPY data (header, rows, trailer) for copy_expert."""

    def __init__(self, rows: pa.Array):
        self.rows = rows  # keeps the buffer alive
        _, offsets, data = rows.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int64, count=len(rows) + 1, offset=rows.offset * 8)
        self.whole = [memoryview(_BINARY_HEADER), memoryview(data)[int(bounds[0]):int(bounds[-1])],
                      memoryview(_BINARY_TRAILER)]
        self.parts = list(self.whole)

    def seek(self, position: int) -> None:
        """Back to the start (a COPY refused by a duplicate key is sent again without it)."""
        if position != 0:
            raise ValueError("a binary COPY payload can only be rewound to its start")
        self.parts = list(self.whole)

    def read(self, size: int = -1) -> bytes:
        while self.parts and not len(self.parts[0]):
            self.parts.pop(0)
        if not self.parts:
            return b""
        part = self.parts[0]
        size = len(part) if size is None or size < 0 else size
        self.parts[0] = part[size:]
        return bytes(part[:size])


def _binary_payload(frame: pd.DataFrame, carrier: str, file_id: int, kinds: dict[str, str]) -> BinaryCopy | None:
    rows = binary_rows(frame, carrier, file_id, kinds)
    return None if rows is None else BinaryCopy(rows.take(_key_order(frame)))


def binary_rows(frame: pd.DataFrame, carrier: str | np.ndarray, file_id: int | np.ndarray,
                kinds: dict[str, str]) -> pa.Array | None:
    """Each row of ``frame`` as a binary COPY row (in frame order), or None where a value
    needs the CSV payload. ``carrier``, ``file_id``: one for all rows, or one per row (files
    prepared together, see :mod:`cdrflow.small_files`)."""
    pieces: list = [struct.pack(">h", len(CALL_COLUMNS))]
    constants = {"carrier": carrier, "file_id": file_id}
    for name in CALL_COLUMNS:
        if name == "file_id" and isinstance(file_id, np.ndarray):
            field = _number_field(file_id.astype(np.int64), np.ones(len(file_id), dtype=bool), kinds[name])
            fields = None if field is None else [field]
        elif name == "carrier" and isinstance(carrier, np.ndarray):
            fields = _binary_fields(pd.Series(carrier, dtype=object), kinds[name])
        elif name in constants:
            field = _constant_field(constants[name], kinds[name])
            fields = None if field is None else [field]
        else:
            fields = _binary_fields(frame[name], kinds[name])
        if fields is None:
            return None
        for f in fields:  # neighbouring constants (NULL columns, carrier, file id) become one
            if isinstance(f, bytes) and pieces and isinstance(pieces[-1], bytes):
                pieces[-1] += f
            else:
                pieces.append(f)
    arrays = [pa.scalar(p, pa.large_binary()) if isinstance(p, bytes) else p for p in pieces]
    rows = pc.binary_join_element_wise(*arrays, pa.scalar(b"", pa.large_binary()))
    if isinstance(rows, pa.Scalar):  # every column constant (not the case for calls)
        rows = pa.array([rows.as_py()] * len(frame), pa.large_binary())
    return rows


def _key_order(frame: pd.DataFrame) -> pa.Array:
    """Row order of the primary key (carrier, carrier_call_id, start_time; one carrier here).

    PostgreSQL then inserts a chunk's keys into the index from left to right, each next to
    the one before, instead of all over it: the index half of the COPY takes a fraction of
    the time. (Row order in the table carries no meaning; line_number keeps the file's.)
    The order is bytewise, as in the C collations; with another collation it only helps less.
    """
    keys = pa.table({"id": pa.array(frame["carrier_call_id"], from_pandas=True),
                     "start": pa.array(frame["start_time"], from_pandas=True)})
    return pc.sort_indices(keys, sort_keys=[("id", "ascending"), ("start", "ascending")])


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
    batch: Batch | None = None  # COPY payloads of ``calls``, when built already (small_files)


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
        repeat = _repeats(frame)
        if repeat.any():
            frame = frame[~repeat]
        yield CheckedChunk(frame, list(chunk.problems), [], len(chunk.calls) + len(chunk.problems),
                           int(repeat.sum()))


def _apply(chunk: CheckedChunk, checked: validation.ChunkValidation) -> CheckedChunk:
    """Move the rows that failed an expectation (by line number) from ``calls`` to ``rejected``."""
    lines = chunk.calls["line_number"].to_numpy()
    bad = {int(p): checked.bad_rows[int(lines[p])] for p in np.flatnonzero(np.isin(lines, list(checked.bad_rows)))}
    return _apply_at(chunk, bad, checked.summary)


VALIDATION_ROWS = 60_000  # rows per Great Expectations run, about (a run costs ~0.1 s plus its rows)


def validated_chunks(stream: BinaryIO, file_type: str, options: ParseOptions) -> Iterator[CheckedChunk]:
    """Parse ``stream`` as ``file_type`` and validate each chunk (Great Expectations).

    Rows that fail parsing or an expectation come back in ``rejected`` with their line
    numbers and the names of what they failed. :class:`FormatError` propagates.

    A suite run costs about 0.1 s whatever its size and a parser's chunk holds some 30,000
    rows, so chunks are validated in groups of about :data:`VALIDATION_ROWS` rows, with the
    results of validating each chunk alone (see :func:`validate_together`); they still come
    out one by one. The first chunk is validated by itself, so that loading starts early.
    """
    parsed = parsed_chunks(stream, file_type, options)
    group: list[CheckedChunk] = []
    rows = 0
    first = True
    while True:
        try:
            chunk = next(parsed)
        except StopIteration:
            break
        except FormatError:
            yield from _validated_group(group, file_type)  # what was read before, as before
            raise
        group.append(chunk)
        rows += len(chunk.calls)
        chunk = None
        if first or rows >= VALIDATION_ROWS:
            yield from _validated_group(group, file_type)
            group, rows, first = [], 0, False
    yield from _validated_group(group, file_type)


def _validated_group(group: list[CheckedChunk], file_type: str) -> Iterator[CheckedChunk]:
    """The chunks of ``group``, validated; each is let go of once handed out (memory)."""
    if sum(1 for c in group if len(c.calls)) > 1:
        group[:] = [chunk for (chunk,) in validate_together([[c] for c in group], file_type)]
    else:
        group[:] = [_apply(c, validation.validate_chunk(c.calls, file_type)) if len(c.calls) else c for c in group]
    group.reverse()
    while group:
        yield group.pop()


def validate_together(files: list[list[CheckedChunk]], file_type: str) -> list[list[CheckedChunk]]:
    """Validate the parsed chunks of several small files of one type in ONE suite run.

    A Great Expectations run costs about a third of a second whatever its size, which would
    dominate a file of a thousand calls; a day of thousands of small files is validated in
    groups instead, with exactly the results of validating each file alone (see
    :func:`validate_owned`).
    """
    parts, where = [], []
    used = validation._columns(file_type)  # the suite's columns: the others need no copying
    for f, chunks in enumerate(files):
        for c, chunk in enumerate(chunks):
            if len(chunk.calls):
                parts.append(chunk.calls[[name for name in used if name in chunk.calls]])
                where.append((f, c, len(chunk.calls)))
    if not parts:
        return files
    combined = pd.concat(parts, ignore_index=True)
    owner = np.repeat(np.array([f for f, _, _ in where], dtype=np.int64), [n for _, _, n in where])
    bad, summaries = validate_owned(combined, owner, len(files), file_type)
    out = [list(chunks) for chunks in files]
    offset = 0
    for f, c, n in where:
        mine = {i - offset: reasons for i, reasons in bad.items() if offset <= i < offset + n}
        counts: dict[str, int] = {}
        for reasons in mine.values():
            for name in reasons:
                counts[name] = counts.get(name, 0) + 1
        summary = [validation.ValidationSummary(s.expectation, counts.get(s.expectation, 0) == 0,
                                                counts.get(s.expectation, 0), s.column) for s in summaries[f]]
        out[f][c] = _apply_at(out[f][c], mine, summary)
        offset += n
    return out


def validate_owned(calls: pd.DataFrame, owner: np.ndarray, owners: int, file_type: str
                   ) -> tuple[dict[int, list[str]], list[list[validation.ValidationSummary]]]:
    """ONE suite run over the rows of several files; ``owner[i]`` is the file (0 ..
    ``owners`` - 1) of row i. Returns the failed expectations of each failing row (by its
    position in ``calls``) and each file's summary, which count its own rows only: exactly what
    validating each file alone gives. Call ids are made file-specific for the uniqueness
    expectation (unique within a file, not across files)."""
    used = validation._columns(file_type)
    view = calls[[name for name in used if name in calls]]
    changes: dict = {"line_number": np.arange(len(view))}  # GX reports rows by this column
    if "carrier_call_id" in view:
        ids = pa.array(view["carrier_call_id"], from_pandas=True)
        prefix = pc.cast(pa.array(owner, pa.int64()), pa.string())
        owned = pc.binary_join_element_wise(prefix, pc.cast(ids, pa.string()), "\x1f")  # null stays null
        changes["carrier_call_id"] = pd.array(owned.cast(pa.large_string()), dtype=_STR)
    checked = validation.validate_chunk(view.assign(**changes), file_type)
    counts = np.zeros((owners, len(checked.summary)), dtype=np.int64)
    index = {s.expectation: k for k, s in enumerate(checked.summary)}
    for i, reasons in checked.bad_rows.items():
        for name in reasons:
            counts[owner[i], index[name]] += 1
    summaries = [[validation.ValidationSummary(s.expectation, int(counts[f, k]) == 0, int(counts[f, k]), s.column)
                  for k, s in enumerate(checked.summary)] for f in range(owners)]
    return checked.bad_rows, summaries


def _apply_at(chunk: CheckedChunk, bad: dict[int, list[str]], summary) -> CheckedChunk:
    """Move the rows at positions ``bad`` (failed expectations) from ``calls`` to ``rejected``."""
    frame = chunk.calls
    rejected = list(chunk.rejected)
    if bad:
        mask = np.zeros(len(frame), dtype=bool)
        positions = np.sort(np.fromiter(bad, dtype=np.int64, count=len(bad)))
        mask[positions] = True
        lines = frame["line_number"].to_numpy()[positions]
        texts = frame["raw_text"].to_numpy(dtype=object)[positions]
        rejected += [RowProblem(int(n), t, bad[int(p)]) for p, n, t in zip(positions, lines, texts)]
        frame = frame[~mask]
    return CheckedChunk(frame, rejected, summary, chunk.lines, chunk.repeats)


_LOOK_UP = object()


def load_file(engine: Engine, store: RawStore, file_id: int, *,
              progress: Callable[[str], None] | None = None,
              prepared: Iterable[CheckedChunk] | None = None, kinds=_LOOK_UP) -> LoadResult:
    """Parse, validate and load registered file ``file_id`` in one transaction.

    Raises :class:`FileBusy` when another worker holds the file or it is not ``received`` or
    ``failed``. Any exception rolls everything back (the file stays as it was).
    ``prepared``: the file's chunks, already parsed and validated (see :func:`validate_together`);
    they may raise :class:`FormatError` while iterated, as parsing would. They are written from
    this thread (there is no parsing left to overlap with).
    ``kinds``: what :func:`column_kinds` returns, when the caller has it already.

    A file that was loaded before and re-queued by an operator loses its earlier calls in the
    same transaction, so a re-run replaces them instead of counting them as duplicates.
    """
    started = time.perf_counter()
    say = progress or log.info
    with engine.connect() as conn, conn.begin():
        row = conn.execute(text(
            "SELECT carrier, file_type, stored_file_id, file_name, calls_loaded, calls_rejected, status "
            "FROM cdr_files WHERE id = :id AND status IN ('received', 'failed') FOR UPDATE SKIP LOCKED"),
            {"id": file_id}).first()
        if row is None:
            raise FileBusy(f"file {file_id} is being loaded by another worker or is not "
                           "in a loadable status (received or failed)")
        conn.execute(text("SET LOCAL TimeZone = 'UTC'"))  # COPY payloads carry naive UTC times
        if row.calls_rejected is not None or row.status == "failed":  # quarantine of an earlier run
            conn.execute(text("DELETE FROM rejected_rows WHERE file_id = :id"), {"id": file_id})
        carrier = carriers.get(conn, row.carrier)
        if not row.file_type:
            raise CdrflowError(f"file {file_id} has no file type and carrier {row.carrier} names none")
        set_status(conn, file_id, "processing", f"loading as {row.file_type}")
        if row.calls_loaded:
            _forget_previous_load(conn, file_id)
        dbapi = conn.connection.driver_connection
        inline = prepared is not None
        if prepared is None:
            validation.warm_up(row.file_type)
            options = options_for(carrier, row.file_type)
            prepared = _parse_stored(store, row.stored_file_id, row.file_type, options)
        result, writer = _load(dbapi, file_id, row.file_name, carrier, prepared, say,
                               column_kinds(dbapi) if kinds is _LOOK_UP else kinds, inline)
        result.seconds = time.perf_counter() - started
        set_status(conn, file_id, result.status, result.message, lines=result.lines, processed=True)
        conn.execute(text("UPDATE cdr_files SET calls_loaded = :l, calls_rejected = :r, "
                          "calls_duplicate = :d WHERE id = :id"),
                     {"l": result.loaded, "r": result.rejected, "d": result.duplicates, "id": file_id})
        if result.status == "loaded":
            # last: files of one carrier and day loading side by side wait for each other's
            # call_days row here, so it is held from this point to the commit only
            writer.record_days()
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


def _load(dbapi, file_id, file_name, carrier, chunks: Iterable[CheckedChunk], say, kinds,
          inline: bool) -> tuple[LoadResult, _Writer]:
    """Write ``chunks``; ``inline``: from this thread, else from a writer thread while this one
    parses the next chunk."""
    result = LoadResult(file_id, "loaded")
    quarantine = _Quarantine(file_id)
    with dbapi.cursor() as cur:
        cur.execute("SAVEPOINT calls")
    writer = _Writer(dbapi, carrier.code, file_id, kinds)
    if inline:
        send = writer.write
    else:
        writer.start()
        send = writer.inbox.put
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
            if writer.error:
                break
            if chunk.batch is not None:
                send(chunk.batch)
            elif len(chunk.calls):  # the raw text is only needed for the quarantine, already done
                send(Batch.prepare(chunk.calls.drop(columns=["raw_text"], errors="ignore"), carrier.code, file_id, kinds))
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                say(f"file {file_id} {file_name}: {result.lines:,} lines read, {writer.loaded:,} calls "
                    f"written, {result.lines / (last_report - started):,.0f} lines/s")
            chunk = None  # not kept alive while the next chunks are parsed
    except FormatError as exc:
        result.status, result.message = "rejected", str(exc)
    finally:
        if not inline:
            writer.inbox.put(None)
            writer.join()
    if writer.error:
        raise writer.error
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
    return result, writer
