"""Small files prepared together (one parse, one suite run, one COPY encoding) give each file
exactly what preparing it alone gives: the same calls, rejected lines, counts and errors."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from functools import partial

import pandas as pd
from sqlalchemy import text

from cdrflow.dev import generate
from cdrflow.formats.base import FormatError, ParseOptions
from cdrflow.intake.registry import register_file
from cdrflow.loading import small_files
from cdrflow.loading.batches import process_batch
from cdrflow.loading.chunks import validated_chunks
from cdrflow.warehouse import carriers
from conftest import add_carrier

ROW = (
    '"acct1","+15551230001","+442071230001","from-trunk","""Alice"" <+15551230001>","SIP/a-1",'
    '"SIP/b-1","Dial","SIP/b,60","{start}","{answer}","{end}",'
    '"{duration}","60","ANSWERED","DOCUMENTATION","{uid}",""\n'
)
OPTIONS = ParseOptions(timezone="America/New_York")


def row(uid: str, start: str = "2026-11-01 09:00:00", duration: str = "65") -> str:
    try:
        begin = datetime.strptime(start, "%Y-%m-%d %H:%M:%S")
    except ValueError:  # a start that does not parse: the other times as usual
        begin = datetime(2026, 11, 1, 9)
    answer, end = (f"{begin + timedelta(seconds=s):%Y-%m-%d %H:%M:%S}" for s in (5, 65))
    return ROW.format(uid=uid, start=start, answer=answer, end=end, duration=duration)


def lines(prefix: str, n: int) -> str:
    return "".join(row(f"{prefix}{i}") for i in range(n))


# (name, contents): every case of a file the joined parse must treat as parsing it alone would
FILES = [
    ("generated", generate.asterisk_bytes(300, seed=7)),
    ("no last line end", (lines("a", 3) + row("a3")[:-1]).encode()),
    ("BOM and CRLF", b"\xef\xbb\xbf" + lines("b", 4).replace("\n", "\r\n").encode()),
    (
        "16 columns",
        "".join(row(f"c{i}", start=f"2026-11-01 09:0{i}:00").rsplit(",", 2)[0] + "\n" for i in range(3)).encode(),
    ),  # no uniqueid
    (
        "bad rows",
        (
            lines("d", 30)
            + '"acct1","+1555"\n'
            + row("d-date", start="2026-02-31 10:00:00")
            + row("d-neg", duration="-5")
            + row("d-neg2", duration="-7")
        ).encode(),
    ),
    ("a call twice in the file", (lines("e", 3) + row("e1") + row("e2")).encode()),
    ("the calls of 'generated' again", generate.asterisk_bytes(300, seed=7)[:2000].rsplit(b"\n", 1)[0] + b"\n"),
    ("empty", b""),
    ("binary", bytes(range(256)) * 8),
    ("JSON", b'[{"call_id": "x"}]\n'),
    ("blank lines only", b"\n\n\n"),
    ("not valid UTF-8", (lines("f", 2) + row("f-lat").replace("DOCUMENTATION", "DOC\u00c9")).encode("latin-1")),
    ("two months", (row("g1", start="2026-09-30 19:00:00") + row("g2", start="2026-10-31 23:59:00")).encode()),
    ("only bad rows", b'"x","y"\n"z"\n' + row("h0", start="bad").encode()),
    ("blank lines between", ("\n\n" + row("i1") + "\n" + row("i2")).encode()),
    ("after the blank lines", lines("j", 5).encode()),
    ("a call id repeated with another start", (row("k1") + row("k1", start="2026-11-01 10:00:00")).encode()),
]
QUOTED_NEWLINE = ("quoted value over two lines", (row("m1") + row("m2").replace('"Dial"', '"Di\nal"')).encode())


def alone(data: bytes) -> dict:
    """What preparing one file by itself gives, in comparable form."""
    try:
        chunks = list(validated_chunks(io.BufferedReader(io.BytesIO(data)), "asterisk_csv", OPTIONS))
    except FormatError as exc:
        return {"error": str(exc)}
    return _comparable(chunks)


def _comparable(chunks) -> dict:
    calls = pd.concat([c.calls for c in chunks], ignore_index=True) if chunks else pd.DataFrame()
    if len(calls):  # (raw_text: kept for rejected rows only, in RowProblem)
        calls = calls.drop(columns=["raw_text"], errors="ignore").sort_values("line_number").reset_index(drop=True)
    summary: dict[str, int] = {}
    for c in chunks:
        for s in c.summary:
            summary[s.expectation] = summary.get(s.expectation, 0) + s.unexpected_count
    return {
        "calls": calls,
        "lines": sum(c.lines for c in chunks),
        "repeats": sum(c.repeats for c in chunks),
        "rejected": sorted(
            (p.line_number, p.raw_text, tuple(p.reasons), p.raw_bytes) for c in chunks for p in c.rejected
        ),
        "summary": summary,
    }


def assert_same(got: dict, want: dict, name: str) -> None:
    assert got.keys() == want.keys(), name
    if "error" in want:
        assert got["error"] == want["error"], name
        return
    for key in ("lines", "repeats", "rejected", "summary"):
        assert got[key] == want[key], (name, key)
    if len(want["calls"]) or len(got["calls"]):
        pd.testing.assert_frame_equal(got["calls"], want["calls"], obj=name)


def test_files_of_carriers_in_other_time_zones_are_each_parsed_with_their_own():
    utc = ParseOptions(timezone="UTC")
    cases = [(name, data, "acme" if k % 2 else "other") for k, (name, data) in enumerate(FILES)]
    prepared = small_files.prepare(
        [d for _, d, _ in cases],
        [c for _, _, c in cases],
        list(range(1, len(cases) + 1)),
        "asterisk_csv",
        {"acme": OPTIONS, "other": utc},
        None,
    )
    for (name, data, carrier), p in zip(cases, prepared):
        got = {"error": str(p.error)} if p.error else _comparable(p.chunks)
        try:
            want = _comparable(
                list(
                    validated_chunks(
                        io.BufferedReader(io.BytesIO(data)), "asterisk_csv", OPTIONS if carrier == "acme" else utc
                    )
                )
            )
        except FormatError as exc:
            want = {"error": str(exc)}
        assert_same(got, want, f"{name} ({carrier})")
    # and the same file under both carriers in one group: 09:00 is 14:00 UTC in New York
    both = small_files.prepare(
        [FILES[1][1]] * 2, ["acme", "other"], [1, 2], "asterisk_csv", {"acme": OPTIONS, "other": utc}, None
    )
    starts = [p.chunks[0].calls["start_time"].iloc[0] for p in both]
    assert [t.strftime("%H:%M") for t in starts] == ["14:00", "09:00"]


def together(files: list[tuple[str, bytes]], kinds=None) -> list[dict]:
    prepared = small_files.prepare(
        [d for _, d in files],
        ["acme"] * len(files),
        list(range(1, len(files) + 1)),
        "asterisk_csv",
        {"acme": OPTIONS},
        kinds,
    )
    return [{"error": str(p.error)} if p.error else _comparable(p.chunks) for p in prepared]


def test_each_file_of_a_group_gets_what_it_would_get_alone():
    for (name, data), got in zip(FILES, together(FILES)):
        assert_same(got, alone(data), name)


def test_the_cases_are_not_trivial():
    """The cases above do reach what they are named for (else the test above proves little)."""
    by_name = {name: alone(data) for name, data in FILES}
    assert len(by_name["generated"]["calls"]) == 300
    parse = {r[2][0].split(":")[1] for r in by_name["bad rows"]["rejected"] if r[2][0].startswith("parse:")}
    assert parse == {"column_count", "start_time"}
    assert any(r[2][0].startswith("expect_") for r in by_name["bad rows"]["rejected"])
    assert by_name["a call twice in the file"]["repeats"] == 2
    assert by_name["empty"] == {"error": "empty file"}
    assert "binary data" in by_name["binary"]["error"]
    assert len(by_name["16 columns"]["calls"]) == 3
    assert by_name["blank lines between"]["calls"]["line_number"].tolist() == [3, 5]


def test_a_quoted_value_over_two_lines_sends_its_files_to_be_parsed_alone():
    files = FILES[:3] + [QUOTED_NEWLINE] + FILES[3:6]
    for (name, data), got in zip(files, together(files)):
        assert_same(got, alone(data), name)


def test_files_in_another_order_give_the_same_per_file_results():
    backwards = list(reversed(FILES))
    for (name, data), got in zip(backwards, together(backwards)):
        assert_same(got, alone(data), name)


def test_copy_payloads_of_a_group_hold_each_files_rows_in_key_order(engine):
    from cdrflow.loading.payloads import column_kinds

    with engine.connect() as conn:
        kinds = column_kinds(conn.connection.driver_connection)
    files = [FILES[0], FILES[1], FILES[12], FILES[4]]
    prepared = small_files.prepare(
        [d for _, d in files], ["acme"] * 4, [11, 12, 13, 14], "asterisk_csv", {"acme": OPTIONS}, kinds
    )
    for (name, _), p, file_id in zip(files, prepared, [11, 12, 13, 14]):
        (chunk,) = p.chunks
        batch = chunk.batch
        assert sum(rows for _, rows, _, _ in batch.payloads) == len(chunk.calls), name
        months = [m for m, _, _, _ in batch.payloads]
        assert months == sorted(set(months)), name
        assert sum(batch.per_day.values()) == len(chunk.calls)
        for _month, rows, fmt, payload in batch.payloads:
            assert fmt == "binary"
            data = b"".join(iter(partial(payload.read, 1 << 16), b""))
            ids = _binary_ids(data, file_id)
            assert len(ids) == rows and ids == sorted(ids), name
    # 19:00 on 30 September and 23:59 on 31 October in New York are September and November in UTC
    assert [m for m, *_ in prepared[2].chunks[0].batch.payloads] == ["2026-09", "2026-11"]


def _binary_ids(data: bytes, file_id: int) -> list[str]:
    """record_key of each row of a binary COPY payload (the key order); checks the file id of each."""
    import struct

    from cdrflow.loading.payloads import CALL_COLUMNS

    assert data.startswith(b"PGCOPY\n\xff\r\n\x00")
    pos, ids = 19, []
    while True:
        (count,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if count == -1:
            return ids
        values = {}
        for name in CALL_COLUMNS:
            (length,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if length >= 0:
                values[name] = data[pos : pos + length]
                pos += length
        assert struct.unpack(">q", values["file_id"])[0] == file_id
        ids.append(values["record_key"].decode())


def test_without_binary_copy_the_loader_builds_each_files_payload(engine, store):
    """kinds None (a calls column of a type binary COPY does not cover): no payloads are built
    in the group, and each file loads through the loader's own (CSV) payload."""
    from cdrflow.loading.transaction import load_file

    add_carrier(engine, "acme", file_type="asterisk_csv", reject_threshold=0.5, config={"timezone": "America/New_York"})
    files = [FILES[0], FILES[4]]
    ids = [
        register_file(
            engine, store, io.BytesIO(data), file_name=f"{name}.csv", carrier="acme", file_source="upload"
        ).file_id
        for name, data in files
    ]
    prepared = small_files.prepare([d for _, d in files], ["acme"] * 2, ids, "asterisk_csv", {"acme": OPTIONS}, None)
    assert all(p.chunks[0].batch is None for p in prepared)
    results = [load_file(engine, store, i, prepared=iter(p.chunks), kinds=None) for i, p in zip(ids, prepared)]
    assert [(r.status, r.loaded, r.rejected) for r in results] == [("loaded", 300, 0), ("loaded", 30, 4)]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 330


def test_a_batch_of_small_files_loads_what_loading_each_alone_loads(engine, store):
    """Through the warehouse: the files loaded one by one, then again by one processing batch
    (prepared together), give the same calls, quarantine and counts."""
    from cdrflow.loading.transaction import load_file

    add_carrier(engine, "acme", file_type="asterisk_csv", reject_threshold=0.5, config={"timezone": "America/New_York"})
    add_carrier(engine, "other", reject_threshold=0.5)
    files = [(name, data) for name, data in FILES if not name.startswith("the calls of")]  # (load order matters)
    ids = [
        register_file(
            engine,
            store,
            io.BytesIO(data),
            file_name=f"{name}.csv",
            carrier="acme" if k % 3 else "other",
            file_source="upload",
        ).file_id
        for k, (name, data) in enumerate(files)
    ]  # a group of both
    for file_id in ids:
        load_file(engine, store, file_id)
    alone = _warehouse(engine)
    with engine.begin() as conn:  # as an operator's re-run would: the batch replaces the earlier loads
        conn.execute(text("UPDATE cdr_files SET status = 'received' WHERE id = ANY(:ids)"), {"ids": ids})
    outcome = process_batch(engine, store, ids)
    assert not outcome.errors and len(outcome.results) == len(files)
    together = _warehouse(engine)
    for key in alone:
        assert together[key] == alone[key], key
    assert len(alone["calls"]) > 300 and len(alone["quarantine"]) >= 6
    assert {c.carrier for c in alone["calls"]} == {"acme", "other"}
    statuses = {r.file_name: r.status for r in together["files"]}
    assert statuses["empty.csv"] == "rejected" and statuses["generated.csv"] == "loaded"


def _warehouse(engine) -> dict:
    with engine.connect() as conn:
        return {
            key: conn.execute(text(sql)).all()
            for key, sql in {
                "files": "SELECT file_name, status, calls_loaded, calls_rejected, calls_duplicate FROM cdr_files "
                "ORDER BY file_name",
                "calls": "SELECT f.file_name, c.line_number, c.carrier, c.carrier_call_id, c.start_time, "
                "c.duration_seconds, c.extras::text FROM calls c JOIN cdr_files f ON f.id = c.file_id "
                "ORDER BY 1, 2",
                "quarantine": "SELECT f.file_name, r.line_number, r.raw_text, r.reasons FROM rejected_rows r "
                "JOIN cdr_files f ON f.id = r.file_id ORDER BY 1, 2",
                "days": "SELECT carrier, day, calls FROM call_days WHERE calls > 0 ORDER BY 1, 2",
            }.items()
        }
