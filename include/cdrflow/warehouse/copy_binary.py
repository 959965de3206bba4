"""PostgreSQL's binary COPY format, built column by column with Arrow and numpy.

The data is a header, then per row an int16 field count and per field an int32 byte length
(-1 for NULL) followed by the value in the type's binary form, then an int16 -1. All numbers
are big-endian. Each column becomes one or two Arrow binary arrays (length prefixes, values);
one element-wise join of all of them, in the C++ kernel, lays the rows out one after the other.

Binary spares PostgreSQL parsing text into timestamps and integers (about a third of its work
on a COPY of calls). Nothing here knows the calls table: callers name the columns and their
types (``pg_type.typname``). Values the format cannot express here return None, and the
caller sends CSV instead.
"""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # signature, flags, no extension

_BINARY_TRAILER = struct.pack(">h", -1)

_NULL_FIELD = struct.pack(">i", -1)

_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 00:00:00 UTC in microseconds since 1970

_INT_TYPES = {
    "int2": (">i2", 2, -(1 << 15), (1 << 15) - 1),
    "int4": (">i4", 4, -(1 << 31), (1 << 31) - 1),
    "int8": (">i8", 8, -(1 << 63), (1 << 63) - 1),
}

_TEXT_TYPES = {"text", "varchar", "json"}  # json's binary form is its text

KNOWN_TYPES = {"timestamptz", "jsonb", "_text"} | _TEXT_TYPES | set(_INT_TYPES)


def _fixed_width(records: np.ndarray) -> pa.Array:
    """Arrow binary array whose elements are the raw bytes of each element of ``records``."""
    n, width = len(records), records.dtype.itemsize
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(records))]
    )


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
        lengths_field: pa.Array | bytes = _fixed_width(prefix)
        if valid is not None:
            lengths_field = _with_nulls(lengths_field, valid)
        return [lengths_field, values]
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
        self.whole = [
            memoryview(_BINARY_HEADER),
            memoryview(data)[int(bounds[0]) : int(bounds[-1])],
            memoryview(_BINARY_TRAILER),
        ]
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


def binary_rows(
    frame: pd.DataFrame, columns: list[str], kinds: dict[str, str], constants: dict[str, object] | None = None
) -> pa.Array | None:
    """Each row of ``frame`` as a binary COPY row of ``columns`` (in frame order), or None where
    a value needs CSV. ``kinds``: each column's type name. ``constants``: columns that are not
    in ``frame``, each one value for all rows or a numpy array of one value per row."""
    constants = constants or {}
    pieces: list = [struct.pack(">h", len(columns))]
    for name in columns:
        kind = kinds[name]
        if name not in constants:
            fields = _binary_fields(frame[name], kind)
        elif isinstance(value := constants[name], np.ndarray):
            if kind in _INT_TYPES:
                field = _number_field(value.astype(np.int64), np.ones(len(value), dtype=bool), kind)
                fields = None if field is None else [field]
            else:
                fields = _binary_fields(pd.Series(value, dtype=object), kind)
        else:
            field = _constant_field(value, kind)
            fields = None if field is None else [field]
        if fields is None:
            return None
        for f in fields:  # neighbouring constants (NULL columns, carrier, file id) become one
            if isinstance(f, bytes) and pieces and isinstance(pieces[-1], bytes):
                pieces[-1] += f
            else:
                pieces.append(f)
    arrays = [pa.scalar(p, pa.large_binary()) if isinstance(p, bytes) else p for p in pieces]
    rows = pc.binary_join_element_wise(*arrays, pa.scalar(b"", pa.large_binary()))
    if isinstance(rows, pa.Scalar):  # every column constant
        rows = pa.array([rows.as_py()] * len(frame), pa.large_binary())
    return rows
