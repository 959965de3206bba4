"""Values that once stopped a whole file (or a whole batch): far-future dates, NUL bytes, a line
without an end, local times in a clock change. Each is the problem of its own row, with a
reason, in every path: a file alone, small files prepared together, the dry run."""

from __future__ import annotations

import io
import json
import tracemalloc

import pandas as pd
import pytest
from tests.conftest import run_cli
from tests.test_loader import ROW, q, register, rows

from cdrflow.formats import arrow_text
from cdrflow.formats.base import FormatError, ParseOptions
from cdrflow.loading.batches import process_batch
from cdrflow.loading.chunks import validated_chunks
from cdrflow.loading.transaction import load_file
from cdrflow.warehouse import carriers
from conftest import add_carrier

FAR = ROW.format(uid="far").replace("2026-11-01 09:01:05", "9999-12-31 23:59:00")  # its end time


@pytest.fixture
def acme(engine) -> str:
    add_carrier(engine, "acme", file_type="asterisk_csv")
    return "acme"


def _quarantine(engine) -> dict[tuple[int, int], list[str]]:
    return {(r.file_id, r.line_number): r.reasons for r in q(engine, "SELECT * FROM rejected_rows")}


def test_a_far_future_date_quarantines_its_row_in_a_file_alone_and_in_a_batch_of_small_files(engine, store, acme):
    far_start = ROW.format(uid="far2").replace("2026-11-01 09:00:00", "9999-12-31 23:59:00")
    data = rows(*[f"a{i}" for i in range(40)]) + FAR.encode() + far_start.encode()
    alone = register(engine, store, data, "alone.csv").file_id
    result = load_file(engine, store, alone)
    assert (result.status, result.loaded, result.rejected) == ("loaded", 40, 2)
    assert _quarantine(engine) == {
        (alone, 41): ["parse:end_time:out of range '9999-12-31 23:59:00'"],
        (alone, 42): ["parse:start_time:out of range '9999-12-31 23:59:00'"],
    }

    group = [register(engine, store, rows(*[f"b{k}-{i}" for i in range(40)]) + FAR.encode(), f"{k}.csv") for k in "xy"]
    outcome = process_batch(engine, store, [r.file_id for r in group])  # prepared together (joined parse)
    assert not outcome.errors and [(r.status, r.loaded, r.rejected) for r in outcome.results] == [("loaded", 40, 1)] * 2
    assert _quarantine(engine)[(group[1].file_id, 41)] == ["parse:end_time:out of range '9999-12-31 23:59:00'"]
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 120


def test_the_dry_run_prints_the_other_rows_and_names_the_far_future_line(tmp_path):
    path = tmp_path / "Master.csv"
    path.write_bytes(rows("p1", "p2") + FAR.encode() + rows("p3"))
    done = run_cli("parse", "--type", "asterisk_csv", str(path))
    assert done.returncode == 0, done.stderr
    assert [line.split(",")[0] for line in done.stdout.splitlines()[1:]] == ["p1", "p2", "p3"]
    assert "rejected line 3: parse:end_time:out of range '9999-12-31 23:59:00'" in done.stderr
    assert "Traceback" not in done.stderr and "3 calls, 1 rejected rows" in done.stderr


MAPPING = {
    "header": True,
    "columns": {"carrier_call_id": "id", "start_time": "start", "end_time": "end"},
    "derive": {"duration_seconds": "end_minus_start"},
}


@pytest.mark.parametrize(
    "fmt, good, far",
    [
        ("%d.%m.%Y %H:%M:%S", "01.11.2026 09:00:00", "31.12.9999 23:59:00"),
        ("%Y-%m-%d %H:%M:%S.%f", "2026-11-01 09:00:00.5", "9999-12-31 23:59:59.999999"),
        ("iso8601", "2026-11-01T09:00:00Z", "9999-12-31T23:59:00Z"),
        ("unix", "1793523600", "253402300740"),
        ("unix_ms", "1793523600000", "99999999999999999999"),
        ("gregorian", "63955742400", "999999999999999"),
    ],
)
def test_a_far_future_time_in_a_mapped_layout_is_a_row_problem(fmt, good, far):
    data = f"id,start,end\nm1,{good},{good}\nm2,{good},{far}\nm3,{far},{good}\n".encode()
    options = ParseOptions(mapping={**MAPPING, "timestamp_format": fmt})
    chunks = list(validated_chunks(io.BufferedReader(io.BytesIO(data)), "mapped", options))
    assert [c for chunk in chunks for c in chunk.calls["carrier_call_id"]] == ["m1"]
    problems = sorted((p.line_number, p.reasons) for chunk in chunks for p in chunk.rejected)
    assert problems == [(3, [f"parse:end_time:out of range {far!r}"]), (4, [f"parse:start_time:out of range {far!r}"])]


def test_a_far_future_kazoo_timestamp_is_a_row_problem():
    records = [
        {"call_id": "k1", "timestamp": 63955742400, "duration_seconds": 60},
        {"call_id": "k2", "timestamp": 10**14},
    ]
    chunks = list(
        validated_chunks(io.BufferedReader(io.BytesIO(json.dumps(records).encode())), "kazoo_json", ParseOptions())
    )
    problems = [(p.line_number, p.reasons) for chunk in chunks for p in chunk.rejected]
    assert (2, ["parse:timestamp:out of range 100000000000000"]) in problems


def test_nul_bytes_in_one_field_quarantine_that_line_with_its_bytes(engine, store, acme):
    broken = ROW.format(uid="nul").replace("DOCUMENTATION", "DOC\x00\x00\x00").encode()
    data = rows(*[f"n{i}" for i in range(50)]) + broken + rows(*[f"m{i}" for i in range(49)])
    reg = register(engine, store, data, "nul.csv")
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.loaded, result.rejected) == ("loaded", 99, 1)
    (bad,) = q(engine, "SELECT line_number, raw_bytes, reasons FROM rejected_rows")
    assert (bad.line_number, bad.reasons) == (51, ["parse:nul_bytes:3 NUL byte(s) in the line"])
    assert bytes(bad.raw_bytes) == broken.rstrip(b"\n")


def test_a_file_that_really_is_binary_is_still_rejected_as_binary(engine, store, acme):
    reg = register(engine, store, bytes(range(256)) * 8 + rows("b1"), "blob.csv")
    result = load_file(engine, store, reg.file_id)
    assert result.status == "rejected" and "binary data" in result.message


def test_a_line_without_an_end_is_refused_by_its_number_with_memory_bounded(engine, store, acme):
    data = rows("l1", "l2") + b'"acct1","' + b"9" * (50 << 20)  # 50 MB and no newline
    reg = register(engine, store, data, "endless.csv")
    tracemalloc.start()
    try:
        result = load_file(engine, store, reg.file_id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.status == "rejected"
    assert result.message.startswith("line 3 is longer than 1,048,576 bytes")
    assert peak < 40 << 20  # a block or two, not the 50 MB line (it took 700 MB)


def test_a_long_line_inside_a_block_is_refused_too():
    data = rows("l1") + b'"' + b"x" * (2 << 20) + b'"\n' + rows("l2")
    with pytest.raises(FormatError, match="line 2 is longer than"):
        list(validated_chunks(io.BufferedReader(io.BytesIO(data)), "asterisk_csv", ParseOptions()))


def _at(start: str, uid: str) -> str:
    return ROW.format(uid=uid).replace("2026-11-01 09:00:00", start)


def test_local_times_in_a_clock_change_are_read_by_rule_and_flagged(engine, store):
    add_carrier(engine, "de", file_type="asterisk_csv", config={"timezone": "Europe/Berlin"})
    gap = _at("2026-03-29 02:30:00", "gap").replace("2026-11-01 09:00:05", "2026-03-29 03:30:05")
    gap = gap.replace("2026-11-01 09:01:05", "2026-03-29 03:31:05")
    twice = _at("2026-10-25 02:30:00", "twice").replace("2026-11-01 09:00:05", "2026-10-25 02:30:05")
    twice = twice.replace("2026-11-01 09:01:05", "2026-10-25 02:31:05")
    plain = _at("2026-03-29 01:30:00", "plain").replace("2026-11-01 09:00:05", "2026-03-29 01:30:05")
    plain = plain.replace("2026-11-01 09:01:05", "2026-03-29 01:31:05")
    reg = register(engine, store, (gap + twice + plain).encode(), "dst.csv", carrier="de")
    assert load_file(engine, store, reg.file_id).loaded == 3
    got = {
        r.carrier_call_id: r
        for r in q(engine, "SELECT carrier_call_id, start_time AT TIME ZONE 'UTC' AS start, extras FROM calls")
    }
    # 02:30 does not exist on 29 March (02:00 -> 03:00): read with the offset before, +01:00
    assert got["gap"].start == pd.Timestamp("2026-03-29 01:30:00")
    assert got["gap"].extras[arrow_text.DST_KEY] == "start_time:nonexistent"
    # 02:30 happens twice on 25 October: the first, still summer time (+02:00)
    assert got["twice"].start == pd.Timestamp("2026-10-25 00:30:00")
    assert got["twice"].extras[arrow_text.DST_KEY] == "start_time:ambiguous,answer_time:ambiguous,end_time:ambiguous"
    assert got["plain"].start == pd.Timestamp("2026-03-29 00:30:00") and arrow_text.DST_KEY not in got["plain"].extras


def test_a_nul_character_in_a_kazoo_value_quarantines_that_record(engine, store):
    add_carrier(engine, "kz", file_type="kazoo_json")
    good = {"timestamp": 63955742400, "duration_seconds": 60, "billing_seconds": 50, "hangup_cause": "NORMAL_CLEARING"}
    records = [{**good, "call_id": f"k{i}"} for i in range(30)] + [{**good, "call_id": "z", "caller_id_name": "A\x00B"}]
    reg = register(engine, store, json.dumps(records).encode(), "cdrs.json", carrier="kz")
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.loaded, result.rejected) == ("loaded", 30, 1)
    assert q(engine, "SELECT line_number, reasons FROM rejected_rows") == [
        (31, ["parse:nul_bytes:a value holds a NUL character (\\u0000)"])
    ]
