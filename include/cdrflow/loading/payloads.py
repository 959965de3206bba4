"""COPY payloads for the calls of a chunk: binary where possible, CSV otherwise, per month
partition and in primary key order."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cdrflow.formats.base import CANONICAL_COLUMNS
from cdrflow.loading.keys import day_counts, utc_days
from cdrflow.warehouse.copy_binary import KNOWN_TYPES, BinaryCopy, binary_rows

CALL_COLUMNS = ["carrier", "file_id", "line_number"] + CANONICAL_COLUMNS


@dataclass
class Batch:
    """A chunk ready for the writer: COPY payloads per month partition, built by the main
    thread so that the writer thread does nothing but talk to PostgreSQL."""

    frame: pd.DataFrame
    per_day: dict[str, int]
    payloads: list[tuple[str, int, str, BinaryIO | BinaryCopy]]  # (YYYY-MM, rows, COPY format, data)

    @classmethod
    def prepare(cls, frame: pd.DataFrame, carrier: str, file_id: int, kinds: dict[str, str] | None = None) -> Batch:
        day = utc_days(frame["start_time"])
        per_day = day_counts(day)
        months: dict[str, list[int]] = {}  # YYYY-MM -> its days
        for key in per_day:
            months.setdefault(key[:7], []).append(int(np.datetime64(key, "D").astype(np.int64)))
        payloads = []
        for month in sorted(months):
            part = frame if len(months) == 1 else frame[np.isin(day, months[month])]
            if len(part):
                payloads.append((month, len(part), *copy_payload(part, carrier, file_id, kinds)))
        return cls(frame, per_day, payloads)


def copy_payload(
    frame: pd.DataFrame, carrier: str, file_id: int, kinds: dict[str, str] | None = None
) -> tuple[str, BinaryIO | BinaryCopy]:
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


def column_kinds(dbapi) -> dict[str, str] | None:
    """The type names (``pg_type.typname``) of the calls columns the loader writes, or None
    when one of them is a type the binary payload does not know (CSV is used then)."""
    with dbapi.cursor() as cur:
        cur.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = 'calls'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        )
        kinds = dict(cur.fetchall())
    if not all(kinds.get(c) in KNOWN_TYPES for c in CALL_COLUMNS):
        return None
    return {c: kinds[c] for c in CALL_COLUMNS}


def _binary_payload(frame: pd.DataFrame, carrier: str, file_id: int, kinds: dict[str, str]) -> BinaryCopy | None:
    rows = call_rows(frame, carrier, file_id, kinds)
    return None if rows is None else BinaryCopy(rows.take(_key_order(frame)))


def call_rows(
    frame: pd.DataFrame, carrier: str | np.ndarray, file_id: int | np.ndarray, kinds: dict[str, str]
) -> pa.Array | None:
    """Each row of ``frame`` as a binary COPY row of ``calls`` (in frame order), or None where a
    value needs the CSV payload. ``carrier``, ``file_id``: one for all rows, or one per row (files
    prepared together, see :mod:`cdrflow.loading.small_files`)."""
    return binary_rows(frame, CALL_COLUMNS, kinds, {"carrier": carrier, "file_id": file_id})


def _key_order(frame: pd.DataFrame) -> pa.Array:
    """Row order of the primary key (carrier, record_key, start_time; one carrier here).

    PostgreSQL then inserts a chunk's keys into the index from left to right, each next to
    the one before, instead of all over it: the index half of the COPY takes a fraction of
    the time. (Row order in the table carries no meaning; line_number keeps the file's.)
    The order is bytewise, as in the C collations; with another collation it only helps less.
    """
    keys = pa.table(
        {
            "id": pa.array(frame["record_key"], from_pandas=True),
            "start": pa.array(frame["start_time"], from_pandas=True),
        }
    )
    return pc.sort_indices(keys, sort_keys=[("id", "ascending"), ("start", "ascending")])
