"""Asterisk Master.csv: the layouts with and without the optional trailing columns."""

from __future__ import annotations

import io

import pandas as pd
import pytest
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


# cdr_csv.c writes uniqueid (loguniqueid), userfield (loguserfield), then peeraccount, linkedid
# and sequence (newcdrcolumns), each setting on its own: the count says which columns a file has,
# except 17 and 20, where the values tell a uniqueid from a userfield.
UID, LINKED = '"1774744200.42"', '"1774744200.40"'
FALLBACK = "SIP/a-1@2026-03-29 00:30:00"  # channel@start: the call id of a file without uniqueid


@pytest.mark.parametrize(
    ("trailing", "call_id", "record_key", "call_key", "extras"),
    [
        (f",{UID}", "1774744200.42", "1774744200.42|SIP/b-1|", "1774744200.42", {}),
        (',"vip"', FALLBACK, FALLBACK + "|SIP/b-1|", FALLBACK, {"userfield": "vip"}),
        (f',{UID},"vip"', "1774744200.42", "1774744200.42|SIP/b-1|", "1774744200.42", {"userfield": "vip"}),
        (
            f',"peer",{LINKED},7',
            FALLBACK,
            FALLBACK + "#7",
            "1774744200.40",
            {"peeraccount": "peer", "linkedid": "1774744200.40", "sequence": "7"},
        ),
        (
            f',{UID},"peer",{LINKED},7',
            "1774744200.42",
            "1774744200.42#7",
            "1774744200.40",
            {"peeraccount": "peer", "linkedid": "1774744200.40", "sequence": "7"},
        ),
        (
            f',"vip","peer",{LINKED},7',
            FALLBACK,
            FALLBACK + "#7",
            "1774744200.40",
            {"userfield": "vip", "peeraccount": "peer", "linkedid": "1774744200.40", "sequence": "7"},
        ),
    ],
    ids=["17 uniqueid", "17 userfield", "18", "19 newer only", "20 uniqueid", "20 userfield"],
)
def test_each_cdr_conf_setting_reads_its_own_columns(trailing, call_id, record_key, call_key, extras):
    import json

    calls, problems = parse((BASE16 + trailing + "\n").encode())
    (call,) = calls.to_dict("records")
    assert problems == []
    assert (call["carrier_call_id"], call["call_key"]) == (call_id, call_key)
    assert call["record_key"].startswith(record_key) and (record_key.endswith("#7") or "#" not in call["record_key"])
    read = json.loads(call["extras"])
    assert {k: read[k] for k in ("userfield", "peeraccount", "linkedid", "sequence") if k in read} == extras


def test_small_files_of_17_columns_keep_their_own_layout_when_parsed_together():
    from cdrflow.formats.asterisk_csv import AsteriskCsvParser

    with_uid = "".join(BASE16.replace("SIP/a-1", f"SIP/a-{i}") + f',"17747442{i:02d}.1"\n' for i in range(3))
    with_userfield = "".join(BASE16.replace("SIP/a-1", f"SIP/a-{i}") + ',"vip"\n' for i in range(3))
    datas = [with_uid.encode(), with_userfield.encode()]
    joined = AsteriskCsvParser().parse_many(datas, ParseOptions())
    assert joined.alone == [] and not joined.errors  # (both through the joined path)
    together: dict[int, list[str]] = {0: [], 1: []}
    for chunk in joined.chunks:
        for position, call_id in zip(chunk.files, chunk.calls["carrier_call_id"]):
            together[int(position)].append(call_id)
    assert together == {
        0: [f"17747442{i:02d}.1" for i in range(3)],
        1: [f"SIP/a-{i}@2026-03-29 00:30:00" for i in range(3)],
    }


def test_a_cdr_custom_sample_file_is_refused_with_the_mapping_to_use():
    line = (
        '"""Alice"" <101>","101","200","from-internal","SIP/101-1","SIP/200-2","Dial","SIP/200,30",'
        '"2026-11-30 10:00:00","2026-11-30 10:00:04","2026-11-30 10:01:04","64","60","ANSWERED",'
        '"DOCUMENTATION","acct1","1764496800.1","",3\n'
    )
    with pytest.raises(FormatError, match="mappings/asterisk_cdr_custom.yaml"):
        parse(line.encode() * 3)
    # a cdr_csv file of 19 columns (newcdrcolumns alone) is no such file
    calls, problems = parse((BASE16 + ',"","1774744200.40",7\n').encode())
    assert problems == [] and list(calls["call_key"]) == ["1774744200.40"]
