"""Asterisk Master.csv: the layouts with and without the optional trailing columns."""

from __future__ import annotations

import io

import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdrflow.formats import get_parser
from cdrflow.formats.base import FormatError, ParseOptions

BASE16 = (
    '"1001","+15551230001","+442071230001","from-trunk","""Alice"" <+15551230001>","SIP/a-1","SIP/b-1",'
    '"Dial","SIP/b,60","2026-03-29 00:30:00","2026-03-29 00:30:05","2026-03-29 02:31:05","3665","3660",'
    '"ANSWERED","DOCUMENTATION"'
)


def parse(data: bytes, **options) -> tuple[pd.DataFrame, list]:
    chunks = list(get_parser("asterisk_csv").parse(io.BufferedReader(io.BytesIO(data)), ParseOptions(**options)))
    calls = pd.concat([c.calls for c in chunks]) if chunks else pd.DataFrame()
    return calls, [p for c in chunks for p in c.problems]


def test_sixteen_columns_use_channel_and_start_as_the_call_id():
    calls, problems = parse((BASE16 + "\n").encode(), timezone="Europe/London")
    (call,) = calls.to_dict("records")
    assert problems == []
    assert call["carrier_call_id"] == "SIP/a-1@2026-03-29 00:30:00"
    # 00:30 is GMT and 02:31 is BST: the clocks went forward at 01:00 UTC on 29 March 2026
    assert call["start_time"] == pd.Timestamp("2026-03-29 00:30:00", tz="UTC")
    assert call["end_time"] == pd.Timestamp("2026-03-29 01:31:05", tz="UTC")
    assert (call["duration_seconds"], call["billing_seconds"], call["ringing_seconds"]) == (3665, 3660, 5)
    assert (call["caller_name"], call["caller_number"], call["account_id"]) == ("Alice", "+15551230001", "1001")
    assert call["record_type"] == "complete"


def test_the_trailing_columns_of_newer_versions_are_kept():
    line = BASE16 + ',"1774744200.42","vip","peer-acct","1774744200.40","7"\n'
    calls, _ = parse(line.encode())
    (call,) = calls.to_dict("records")
    assert call["carrier_call_id"] == "1774744200.42"
    import json

    extras = json.loads(call["extras"])
    assert {k: extras[k] for k in ("userfield", "peeraccount", "linkedid", "sequence")} == {
        "userfield": "vip",
        "peeraccount": "peer-acct",
        "linkedid": "1774744200.40",
        "sequence": "7",
    }


def test_line_numbers_count_physical_lines_including_blank_ones():
    data = (BASE16 + "\n\n" + BASE16.replace("SIP/a-1", "SIP/a-2") + "\n").encode()
    calls, _ = parse(data)
    assert list(calls["line_number"]) == [1, 3]


@settings(max_examples=200, deadline=None)
@example(b"\r!")  # once crashed: a lone CR
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_format_error(data):
    try:
        parse(data)
    except FormatError:
        pass


def test_an_impossible_date_is_a_problem_not_a_rolled_over_day():
    calls, problems = parse((BASE16.replace("2026-03-29 00:30:00", "2026-02-31 00:30:00") + "\n").encode())
    assert len(calls) == 0
    assert problems[0].reasons == ["parse:start_time:unparseable '2026-02-31 00:30:00'"]
