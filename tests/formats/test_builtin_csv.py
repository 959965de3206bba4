"""FreeSWITCH mod_cdr_csv, Telnyx-style reports and the billing feed: built-in mappings."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrflow.formats import get_parser
from cdrflow.formats.base import FormatError, ParseOptions


def parse(file_type: str, text: str, **options):
    chunks = list(get_parser(file_type).parse(io.BufferedReader(io.BytesIO(text.encode())), ParseOptions(**options)))
    calls = pd.concat([c.calls for c in chunks]) if chunks else pd.DataFrame()
    return calls, [p for c in chunks for p in c.problems]


FREESWITCH = (
    '"Alice","1001","15551230002","default","2026-07-01 10:00:00","2026-07-01 10:00:07",'
    '"2026-07-01 10:05:07","307","300","NORMAL_CLEARING","a-uuid-1","b-uuid-1","acct9","PCMU","PCMU"\n'
    '"Bob","1002","15551230003","default","2026-07-01 11:00:00","","2026-07-01 11:00:20","20","0",'
    '"NO_ANSWER","a-uuid-2","","acct9","PCMU","PCMU"\n'
    '"Broken","1003"\n'
)


def test_freeswitch_default_template_with_local_times():
    calls, problems = parse("freeswitch_csv", FREESWITCH, timezone="America/Chicago")
    first, second = calls.to_dict("records")
    assert (first["carrier_call_id"], first["other_leg_call_id"], first["caller_name"]) == (
        "a-uuid-1",
        "b-uuid-1",
        "Alice",
    )
    assert first["start_time"] == pd.Timestamp("2026-07-01 15:00:00", tz="UTC")  # CDT is UTC-5
    assert (first["duration_seconds"], first["billing_seconds"], first["ringing_seconds"]) == (307, 300, 7)
    assert first["record_type"] == "complete" and second["record_type"] == "incomplete"
    assert pd.isna(second["answer_time"]) and json.loads(first["extras"]) == {
        "context": "default",
        "read_codec": "PCMU",
        "write_codec": "PCMU",
    }
    assert [(p.line_number, p.reasons) for p in problems] == [(3, ["parse:column_count:expected 15, got 2"])]


TELNYX = (
    "Call Leg ID,Start Time,Answer Time,End Time,Duration,Billed Sec,Direction,Record Type,"
    "Connection ID,CLI,CLD,Tags,Cost,Currency\n"
    "leg-1,2026-07-01T10:00:00+00:00,2026-07-01T10:00:05+00:00,2026-07-01T10:01:05+00:00,65,60,"
    '2,1,conn-7,+15551230001,+442071230001,"sales, vip",0.012,USD\n'
    "leg-2,2026-07-01T12:00:00+02:00,,2026-07-01T12:00:09+02:00,9,0,Inbound,Incomplete,conn-7,"
    "+442071230001,+15551230001,,0,USD\n"
)


def test_telnyx_report_with_seed_vocabulary_and_synonym_headers():
    calls, problems = parse("telnyx_csv", TELNYX)
    first, second = calls.to_dict("records")
    assert problems == []
    assert (first["carrier_call_id"], first["direction"], first["record_type"], first["connection"]) == (
        "leg-1",
        "outbound",
        "complete",
        "conn-7",
    )
    assert first["tags"] == '{"sales","vip"}'
    assert json.loads(first["extras"]) == {"cost": "0.012", "currency": "USD"}
    assert second["start_time"] == pd.Timestamp("2026-07-01 10:00:00", tz="UTC")
    assert (second["direction"], second["record_type"]) == ("inbound", "incomplete")


def test_telnyx_report_without_a_call_id_column_is_refused_by_name():
    with pytest.raises(FormatError, match="no column for carrier_call_id: the file has none of call_leg_id"):
        parse("telnyx_csv", "Start Time,CLI\n2026-07-01T10:00:00Z,+1555\n")


FEED = (
    "id,datetime,from,to,seconds,type,sub_type,billing_group,billing_period,cost\n"
    "1001,2026-07-01 10:00:00,61290001111,61412000222,125,M,MG,grpA,2026-07,0.31\n"
    "1002,2026-07-01 10:05:00,61412000333,61290001111,30,IB,IB,grpA,2026-07,0.00\n"
    "1003,2026-07-01 10:06:00,61290001111,61290004444,10,M,XX,grpA,2026-07,0.01\n"
)


def test_billing_feed_call_types_come_from_the_seed_table():
    calls, problems = parse("billing_feed_csv", FEED, timezone="Australia/Sydney")
    first, second = calls.to_dict("records")
    assert (first["call_type"], first["call_sub_type"], first["direction"]) == ("M", "MG", "outbound")
    assert second["direction"] == "inbound"
    assert first["start_time"] == pd.Timestamp("2026-07-01 00:00:00", tz="UTC")  # AEST is UTC+10
    assert json.loads(first["extras"]) == {"billing_group": "grpA", "billing_period": "2026-07", "cost": "0.31"}
    assert [(p.line_number, p.reasons) for p in problems] == [(4, ["parse:call_type:unknown 'M/XX'"])]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=1500))
def test_arbitrary_bytes_parse_or_raise_format_error(data):
    for file_type in ("freeswitch_csv", "telnyx_csv", "billing_feed_csv"):
        try:
            list(get_parser(file_type).parse(io.BufferedReader(io.BytesIO(data)), ParseOptions()))
        except FormatError:
            pass


def test_a_quoted_value_with_line_breaks_is_one_record_under_its_first_line():
    calls, problems = parse("freeswitch_csv", FREESWITCH.replace('"Alice"', '"Alice\r\nfrom the front desk"'))
    assert list(zip(calls["line_number"], calls["caller_name"])) == [(1, "Alice\nfrom the front desk"), (3, "Bob")]
    assert [(p.line_number, p.raw_text) for p in problems] == [(4, '"Broken","1003"')]
