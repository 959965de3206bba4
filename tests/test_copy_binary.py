"""The loader's binary COPY payload: what goes in comes back out, exactly as through CSV."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cdrflow.formats.base import CANONICAL_COLUMNS, TS, conform
from cdrflow.loading import payloads
from cdrflow.loading.writer import Writer

TRICKY = [
    "plain",
    'with "quotes"',
    "comma, here",
    "new\nline",
    "cr\r\nlf",
    "back\\slash \\N \\.",
    "tab\tand\x01control",
    "ünïcødé ✓ 😀 中文",
    "",
    "'single'",
    ",",
    '"',
    "\\",
    "NULL",
    " padded ",
]


def _times(values):
    return pd.Series(pd.to_datetime(values, utc=True, format="ISO8601")).astype(TS)


def tricky_frame() -> pd.DataFrame:
    n = len(TRICKY)
    rng = np.random.default_rng(7)
    starts = [
        "2000-01-01T00:00:00+00:00",  # PostgreSQL's epoch: 0
        "1999-12-31T23:59:59.999999+00:00",  # before it: negative
        "2026-11-01T09:00:00.000001+00:00",
        "2026-03-29T01:30:00.5+01:00",  # an offset, converted to UTC
        "2026-10-25T02:30:00-04:00",
        "1970-01-01T00:00:00+00:00",
        "2099-12-31T23:59:59.999999+00:00",
    ]
    starts = (starts * 3)[:n]
    frame = pd.DataFrame(
        {
            "carrier_call_id": [f"id-{i}-{t}" for i, t in enumerate(TRICKY)],
            "start_time": _times(starts),
            "other_leg_call_id": [None if i % 3 else t for i, t in enumerate(TRICKY)],
            "direction": ["inbound", None, "outbound"] * (n // 3) + [None] * (n % 3),
            "answer_time": _times([None if i % 4 == 0 else s for i, s in enumerate(starts)]),
            "end_time": _times(starts) + pd.to_timedelta(rng.integers(0, 10**9, n), unit="us"),
            "duration_seconds": pd.array([0, 1, 2_147_483_647, None, 60] * 3, dtype="Int64")[:n],
            "billing_seconds": pd.array([None] * n, dtype="Int64"),
            "ringing_seconds": pd.array(range(n), dtype="Int64"),
            "caller_number": TRICKY,
            "caller_name": [None if i % 2 else t for i, t in enumerate(TRICKY)],
            "hangup_code": pd.array([200, None, -2_147_483_648] * 5, dtype="Int64")[:n],
            "extras": [json.dumps({"v": t, "n": i, "nested": {"a": [1, None, t]}}) for i, t in enumerate(TRICKY)],
            "line_number": pd.array(range(1, n + 1), dtype="Int64"),
            "raw_text": TRICKY,
        }
    )
    frame.loc[3, "extras"] = "{}"
    return conform(frame)


COLUMNS = ["carrier", "file_id", "line_number"] + CANONICAL_COLUMNS


def write(engine, frame: pd.DataFrame, file_id: int, kinds, carrier: str = "acme") -> list[str]:
    """Load ``frame`` with the loader's writer (the way _load does); the formats it used."""
    dbapi = engine.raw_connection()
    try:
        batch = payloads.Batch.prepare(frame.drop(columns=["raw_text"]), carrier, file_id, kinds)
        writer = Writer(dbapi.driver_connection, carrier, file_id, kinds)
        writer.start()
        writer.inbox.put(batch)
        writer.inbox.put(None)
        writer.join()
        if writer.error:
            raise writer.error
        dbapi.commit()
        return [fmt for _, _, fmt, _ in batch.payloads]
    finally:
        dbapi.close()


def kinds_of(engine):
    dbapi = engine.raw_connection()
    try:
        return payloads.column_kinds(dbapi.driver_connection)
    finally:
        dbapi.close()


def read(engine, file_id: int) -> list[tuple]:
    dbapi = engine.raw_connection()
    try:
        with dbapi.cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(c for c in COLUMNS if c != 'file_id')} FROM calls "
                "WHERE file_id = %s ORDER BY line_number",
                (file_id,),
            )
            return cur.fetchall()
    finally:
        dbapi.close()


def test_the_binary_payload_covers_every_column_of_calls(engine):
    kinds = kinds_of(engine)
    assert kinds is not None and set(kinds) == set(COLUMNS)


def test_binary_rows_read_back_exactly_as_they_went_in(engine):
    frame = tricky_frame()
    assert write(engine, frame, 1, kinds_of(engine)) == ["binary"] * 7  # one COPY a month
    rows = read(engine, 1)
    assert len(rows) == len(frame)
    for row, (_, want) in zip(rows, frame.iterrows()):
        got = dict(zip([c for c in COLUMNS if c != "file_id"], row))
        assert got["carrier"] == "acme" and got["line_number"] == want["line_number"]
        for name in CANONICAL_COLUMNS:
            value = want[name]
            if name == "extras":
                assert got[name] == json.loads(value)
            elif pd.isna(value):
                assert got[name] is None, name
            elif name.endswith("_time"):
                assert got[name] == value.to_pydatetime(), name  # microseconds and all
                assert got[name].utcoffset() == timedelta(0)
            else:
                assert got[name] == value, name


def test_binary_and_csv_payloads_load_the_same_rows(engine):
    frame = tricky_frame()
    assert set(write(engine, frame, 1, kinds_of(engine))) == {"binary"}
    assert set(write(engine, frame, 2, None, carrier="other")) == {"csv"}
    binary, csv = read(engine, 1), read(engine, 2)
    assert [r[0] for r in csv] == ["other"] * len(frame)
    assert [r[1:] for r in binary] == [r[1:] for r in csv]


def test_rows_are_sent_in_primary_key_order(engine):
    frame = tricky_frame()
    batch = payloads.Batch.prepare(frame.drop(columns=["raw_text"]), "acme", 1, kinds_of(engine))
    for _, _, _, payload in batch.payloads:
        ids = []
        data = payload.read(1 << 30) + payload.read(1 << 30) + payload.read(1 << 30)
        at = 19  # header
        while data[at : at + 2] != b"\xff\xff":
            at += 2
            fields = []
            for _ in COLUMNS:
                size = int.from_bytes(data[at : at + 4], "big", signed=True)
                at += 4
                fields.append(None if size < 0 else data[at : at + size])
                at += max(size, 0)
            ids.append(fields[COLUMNS.index("carrier_call_id")])
        assert ids == sorted(ids) and len(ids) == len(set(ids))


def test_what_binary_cannot_say_goes_as_csv_and_is_refused_as_before(engine):
    kinds = kinds_of(engine)
    tagged = tricky_frame()
    tagged["tags"] = ['{"a","b \\"c\\""}'] + [None] * (len(tagged) - 1)
    assert sorted(write(engine, tagged, 3, kinds)) == ["binary"] * 6 + ["csv"]  # the tagged row's month
    assert read(engine, 3)[0][COLUMNS.index("tags") - 1] == ["a", 'b "c"']

    huge = tricky_frame()
    huge["duration_seconds"] = pd.array([2_147_483_648] + [1] * (len(huge) - 1), dtype="Int64")
    with pytest.raises(Exception, match="out of range for type integer"):
        write(engine, huge, 4, kinds, carrier="huge")
    assert read(engine, 4) == []


def test_a_chunk_with_nothing_but_nulls_in_optional_columns_loads(engine):
    frame = conform(
        pd.DataFrame(
            {
                "carrier_call_id": ["x"],
                "start_time": _times(["2026-11-01T00:00:00+00:00"]),
                "line_number": pd.array([1], dtype="Int64"),
                "raw_text": ["x"],
            }
        )
    )
    assert write(engine, frame, 5, kinds_of(engine)) == ["binary"]
    (row,) = read(engine, 5)
    got = dict(zip([c for c in COLUMNS if c != "file_id"], row))
    assert got["start_time"] == datetime(2026, 11, 1, tzinfo=UTC) and got["extras"] == {}
    assert got["record_key"] == got["call_key"] == "x"  # one record per call id unless the format says otherwise
    assert all(
        got[c] is None
        for c in CANONICAL_COLUMNS
        if c not in ("carrier_call_id", "record_key", "call_key", "start_time", "extras")
    )
