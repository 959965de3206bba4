"""Call keys: which rows repeat a call, and which UTC day each call falls on.

A record is identified by ``(record_key, start_time)`` within its carrier (the primary key
of ``calls``; ``record_key`` is the format's own record identity, see :mod:`cdrflow.formats.base`). Repeats inside one file are found here, vectorised; a call that repeats another
file's is refused by the primary key while loading (see :mod:`cdrflow.loading.writer`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def day_counts(day: np.ndarray) -> dict[str, int]:
    """Calls per UTC day ("YYYY-MM-DD", in order) from days since 1970 (:func:`utc_days`)."""
    days, counts = np.unique(day, return_counts=True)  # a handful of days
    return {str(np.datetime64(int(d), "D")): int(n) for d, n in zip(days, counts)}


def utc_days(start: pd.Series) -> np.ndarray:
    """UTC day of each timestamp, as days since 1970-01-01 (naive timestamps are UTC)."""
    if start.dt.tz is not None:
        start = start.dt.tz_convert("UTC").dt.tz_localize(None)
    return start.to_numpy("datetime64[D]").astype(np.int64)


def repeats(frame: pd.DataFrame, hashes: np.ndarray | None = None, owner: np.ndarray | None = None) -> np.ndarray:
    """Mask of the rows whose (record_key, start_time) repeats an earlier row of ``frame``
    (what ``DataFrame.duplicated`` says, which only runs on rows whose key hashes collide).
    ``owner``: the file of each row, when ``frame`` holds several files (a repeat is a repeat
    within its own file; pass ``hashes`` that include the owner, see :func:`owned_hashes`)."""
    hashes = key_hashes(frame) if hashes is None else hashes
    repeat = np.zeros(len(frame), dtype=bool)
    ordered = np.sort(hashes)
    same = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(same):  # a repeat, or (rarely) two keys with one hash
        twice = np.isin(hashes, same)
        keys = frame[["record_key", "start_time"]][twice]
        if owner is not None:
            keys = keys.assign(_owner=owner[twice])
        repeat[twice] = keys.duplicated().to_numpy()
    return repeat


def owned_hashes(frame: pd.DataFrame, owner: np.ndarray) -> np.ndarray:
    return key_hashes(frame) ^ _mix64(owner.astype(np.uint64) + np.uint64(1))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, on arrays of uint64 (arithmetic wraps around)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def key_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's (record_key, start_time), vectorised over the bytes of
    the ids (pandas' hash of a string column goes through Python objects, ~1 s a million).
    Equal keys always hash alike; the rare different keys that collide only cost a lookup."""
    n = len(frame)
    ids = pa.array(frame["record_key"], from_pandas=True)
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
    micros = (
        start.array.asi8
        if hasattr(start.array, "asi8")
        else pd.util.hash_pandas_object(start, index=False).to_numpy().view(np.int64)
    )
    return _mix64(ids_hash ^ micros.view(np.uint64))


def repeat_lines(
    frame: pd.DataFrame, repeat: np.ndarray, hashes: np.ndarray | None = None, owner: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """(line, the earlier line it repeats) for each row of ``repeat`` (:func:`repeats`), in the
    rows' order, so a dropped repeat can be named in the log. Only the rows whose key hash is a repeated one are
    grouped: nothing is done for a file without repeats, and little for one with a few."""
    if not repeat.any():
        return []
    hashes = key_hashes(frame) if hashes is None else hashes
    involved = np.isin(hashes, hashes[repeat])
    keys = frame.loc[involved, ["record_key", "start_time", "line_number"]]
    group = ["record_key", "start_time"]
    if owner is not None:
        keys = keys.assign(_owner=owner[involved])
        group.append("_owner")
    first = keys.groupby(group, sort=False, dropna=False)["line_number"].transform("first").to_numpy()
    lines = keys["line_number"].to_numpy()
    mine = repeat[involved]
    return [(int(n), int(f)) for n, f in zip(lines[mine], first[mine])]
