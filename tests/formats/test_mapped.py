"""The mapped type: every CDR sample of other projects parses through a shipped mapping."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdrflow.formats import get_parser
from cdrflow.formats.base import FormatError, ParseOptions
from cdrflow.formats.mapping_schema import MappingError, check_mapping, load_mapping

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "samples"
MAPPINGS = REPO / "mappings"


def parse(data: bytes, mapping: dict | str):
    if isinstance(mapping, str):
        mapping = load_mapping(MAPPINGS / mapping)
    chunks = list(get_parser("mapped").parse(io.BufferedReader(io.BytesIO(data)), ParseOptions(mapping=mapping)))
    calls = pd.concat([c.calls for c in chunks]) if chunks else pd.DataFrame()
    return calls, [p for c in chunks for p in c.problems]


# sample, mapping, records, (row index, {canonical field: value})
CASES = [
    (
        "cgrates/ers_default_template.csv",
        "cgrates_ers_default.yaml",
        2,
        (
            0,
            {
                "carrier_call_id": "dsafdsaf",
                "start_time": pd.Timestamp("2013-11-07 08:42:25", tz="UTC"),
                "duration_seconds": 10,
                "callee_number": "+4986517174963",
                "direction": "outbound",
            },
        ),
    ),
    (
        "cgrates/ers_semicolon_reader2.csv",
        "cgrates_ers_semicolon.yaml",
        3,
        (2, {"carrier_call_id": "accid23", "duration_seconds": 26, "line_number": 4}),
    ),
    (
        "cgrates/ers_with_header.csv",
        "cgrates_ers_with_header.yaml",
        1,
        (
            0,
            {
                "carrier_call_id": "SessionFromCsv",
                "duration_seconds": 300,
                "line_number": 2,
                "answer_time": pd.Timestamp("2018-01-07 17:00:10", tz="UTC"),
            },
        ),
    ),
    (
        "cgrates/partial_csv_1.csv",
        "cgrates_partial_csv.yaml",
        2,
        (
            0,
            {
                "record_type": "incomplete",
                "duration_seconds": 65,
                "start_time": pd.Timestamp("2016-07-04 18:58:55", tz="UTC"),
            },
        ),
    ),
    ("cgrates/partial_csv_2.csv", "cgrates_partial_csv.yaml", 1, (0, {"record_type": "incomplete"})),
    ("cgrates/partial_csv_3.csv", "cgrates_partial_csv.yaml", 1, (0, {"record_type": "incomplete"})),
    (
        "cgrates/opensips_flatstore_acc_success.log",
        "opensips_flatstore.yaml",
        8,  # 4 INVITE and 4 BYE legs
        (
            0,
            {
                "call_key": "dd0c4c617a9919d29a6175cdff223a9e@0:0:0:0:0:0:0:0",
                "record_key": "dd0c4c617a9919d29a6175cdff223a9e@0:0:0:0:0:0:0:0;2daec40c;548625ac|INVITE",
                "hangup_code": 200,
                "start_time": pd.Timestamp(1436454408, unit="s", tz="UTC"),
                "carrier_call_id": "dd0c4c617a9919d29a6175cdff223a9e@0:0:0:0:0:0:0:0;2daec40c;548625ac",
            },
        ),
    ),
    ("cgrates/opensips_flatstore_missed_calls.log", "opensips_flatstore.yaml", None, (0, {})),
    (
        "cgrates/opensips_acc_csv_quoted.csv",
        "opensips_acc_csv.yaml",
        None,
        (0, {"start_time": pd.Timestamp("2021-06-01 00:00:09", tz="UTC"), "callee_number": "1002"}),
    ),
    (
        "cgrates/ddb_carrier_cdr.fwv",
        "ddb_carrier_fwv.yaml",
        33,
        (
            0,
            {
                "carrier_call_id": "CDR0000010",
                "start_time": pd.Timestamp("2012-07-08 18:15:06", tz="UTC"),
                "duration_seconds": 18,
                "account_id": "0123451234",
            },
        ),
    ),
    (
        "cgrates/broadworks_cdr_r19.xml",
        "broadworks_r19_xml.yaml",
        2,
        (
            0,
            {
                "carrier_call_id": "25160047719:0",
                "callee_number": "+4915117174963",
                "line_number": 2,
                "start_time": pd.Timestamp("2016-04-19 19:00:05.247", tz="UTC"),  # 21:00:05.247 at +02:00
                "duration_seconds": 15,
                "billing_seconds": 13,
            },
        ),
    ),
    (
        "cdr-stats/CDRImport-2015-10-26.csv",
        "cdrstats_cdr_import.yaml",
        5,
        (
            0,
            {
                "carrier_call_id": "96aa82fe-7bd1-11e5-a230-5c514f6a0f72",
                "duration_seconds": 55,
                "billing_seconds": 50,
                "direction": "inbound",
                "hangup_cause": "NORMAL_CLEARING",
            },
        ),
    ),
    (
        "cdr-stats/import_cdr.txt",
        "cdrstats_import_cdr.yaml",
        5,
        (
            0,
            {
                "carrier_call_id": "3e308846-9036-11e1-964f-000c296bd875",
                "caller_name": "John Bench",
                "start_time": pd.Timestamp(1327521966, unit="s", tz="UTC"),
            },
        ),
    ),
    (
        "cdr-stats/import_voipcall_report.txt",
        "cdrstats_voipcall_report.yaml",
        9,
        (0, {"disposition": "ANSWER", "duration_seconds": 25}),
    ),
]


@pytest.mark.parametrize("sample, mapping, count, expect", CASES, ids=[c[0] for c in CASES])
def test_every_sample_cdr_file_parses_with_its_mapping(sample, mapping, count, expect):
    data = (SAMPLES / sample).read_bytes()
    calls, problems = parse(data, mapping)
    if count is not None:
        assert len(calls) == count, problems
    assert len(calls) > 0
    row, values = expect
    record = calls.iloc[row].to_dict()
    for field, value in values.items():
        assert record[field] == value, (field, record[field])
    for extras in calls["extras"]:
        json.loads(extras)


def test_the_short_last_line_of_the_voipcall_report_is_a_problem_not_a_crash():
    _, problems = parse(
        (SAMPLES / "cdr-stats/import_voipcall_report.txt").read_bytes(), "cdrstats_voipcall_report.yaml"
    )
    assert [(p.line_number, p.reasons) for p in problems] == [(10, ["parse:column_count:expected 7, got 6"])]


def test_a_trailer_count_that_does_not_match_refuses_the_file():
    data = (SAMPLES / "cgrates/ddb_carrier_cdr.fwv").read_bytes()
    lines = data.split(b"\n")
    cut = b"\n".join(line for i, line in enumerate(lines) if i != 5)  # drop one CDR line
    with pytest.raises(FormatError, match="trailer says 33 records but the file holds 32"):
        parse(cut, "ddb_carrier_fwv.yaml")


def test_unmapped_columns_land_in_extras_under_their_header_names():
    calls, _ = parse((SAMPLES / "cdr-stats/CDRImport-2015-10-26.csv").read_bytes(), "cdrstats_cdr_import.yaml")
    extras = json.loads(calls.iloc[0]["extras"])
    assert extras == {"switch": "127.0.0.1", "cdr_source_type": "1", "dialcode": "34", "extradata": "{}"}


def test_latin1_quotes_delimiters_crlf_and_bad_rows():
    mapping = check_mapping(
        {
            "delimiter": ";",
            "header": True,
            "encoding": "latin-1",
            "timezone": "Europe/Paris",
            "columns": {
                "carrier_call_id": "id",
                "start_time": "start",
                "caller_name": "name",
                "duration_seconds": "secs",
            },
            "timestamp_format": "%d/%m/%Y %H:%M",
        }
    )
    data = (
        "id;start;name;secs\r\n"
        '1;01/07/2026 10:00;"Zoé; ""the boss""";60\r\n'
        "2;31/02/2026 10:00;Bad date;60\r\n"
        "3;01/07/2026 11:00;Too few\r\n"
    ).encode("latin-1")
    calls, problems = parse(data, mapping)
    (call,) = calls.to_dict("records")
    assert call["caller_name"] == 'Zoé; "the boss"'
    assert call["start_time"] == pd.Timestamp("2026-07-01 08:00", tz="UTC")  # CEST
    assert [(p.line_number, p.reasons) for p in problems] == [
        (4, ["parse:column_count:expected 4, got 3"]),
        (3, ["parse:start_time:unparseable '31/02/2026 10:00'"]),
    ]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"columns": {"carrier_call_id": 0, "start_time": 1}, "delimter": ";"}, "unknown key(s) ['delimter']"),
        ({"columns": {"carrier_call_id": 0, "start": 1}}, "unknown canonical field(s) ['start']"),
        ({"columns": {"start_time": 1}}, "must name the source of carrier_call_id"),
        ({"columns": {"carrier_call_id": 0, "start_time": 1}, "duration_unit": "minutes"}, "duration_unit"),
        (
            {"columns": {"carrier_call_id": 0, "start_time": 1}, "layout": "json"},
            "layout must be 'delimited', 'fixed_width' or 'xml', got 'json'",
        ),
        (
            {"columns": {"carrier_call_id": 0, "start_time": 1}, "skip_lines": -1},
            "skip_lines: Input should be greater than or equal to 0",
        ),
        (
            {"columns": {"carrier_call_id": 0, "start_time": 1}, "header": "maybe"},
            "header: Input should be a valid boolean",
        ),
        (
            {"columns": {"carrier_call_id": 0, "start_time": 1}, "trailer": {"pattern": "^TRL"}},
            "trailer.count: Field required",
        ),
        (
            {"layout": "fixed_width", "columns": {"carrier_call_id": 0, "start_time": {"start": 0, "end": 5}}},
            "fixed_width column carrier_call_id needs {start, end}",
        ),
    ],
)
def test_a_broken_mapping_is_refused_with_the_key_named(bad, message):
    with pytest.raises(MappingError, match=re.escape(message)):
        check_mapping(bad)


@settings(max_examples=150, deadline=None)
@example(b" \r!")  # once crashed: a lone CR
@given(st.binary(max_size=1500))
def test_arbitrary_bytes_through_delimited_and_fixed_width_mappings(data):
    for mapping in (
        "cgrates_ers_with_header.yaml",
        "ddb_carrier_fwv.yaml",
        "opensips_flatstore.yaml",
        "broadworks_r19_xml.yaml",
    ):
        try:
            parse(data, mapping)
        except FormatError:
            pass


def test_asterisk_cdr_custom_sample_layout_keeps_forked_records_apart_in_one_call():
    # cdr_custom.conf.sample's Master.csv: a Dial(SIP/200&SIP/201) fork writes two records with the
    # caller's uniqueid, numbered by sequence (unquoted); the fork nobody answered has no answer time
    head = '"""Alice"" <101>","101","200","from-internal","SIP/101-00000001",'
    data = (
        head + '"SIP/200-00000002","Dial","SIP/200&SIP/201,30","2026-11-30 10:00:00","2026-11-30 10:00:04",'
        '"2026-11-30 10:01:04","64","60","ANSWERED","DOCUMENTATION","acct1","1764496800.1","",3\n'
        + head
        + '"SIP/201-00000003","Dial","SIP/200&SIP/201,30","2026-11-30 10:00:00","",'
        '"2026-11-30 10:00:04","4","0","NO ANSWER","DOCUMENTATION","acct1","1764496800.1","",4\n'
        '"""Bob"" <102>","102","s","from-internal","SIP/102-00000004","","Hangup","","2026-11-30 10:05:00","",'
        '"2026-11-30 10:05:02","2","0","NO ANSWER","DOCUMENTATION","","1764497100.5","",5\n'
    ).encode()
    calls, problems = parse(data, "asterisk_cdr_custom.yaml")
    assert problems == []
    rows = calls.to_dict("records")
    assert [(r["record_key"], r["call_key"]) for r in rows] == [
        ("1764496800.1|3", "1764496800.1"),
        ("1764496800.1|4", "1764496800.1"),
        ("1764497100.5|5", "1764497100.5"),
    ]
    answered, missed, local = rows
    assert (answered["start_time"], answered["answer_time"]) == (
        pd.Timestamp("2026-11-30 10:00:00", tz="UTC"),
        pd.Timestamp("2026-11-30 10:00:04", tz="UTC"),
    )
    assert pd.isna(missed["answer_time"]) and (answered["billing_seconds"], missed["billing_seconds"]) == (60, 0)
    assert (answered["caller_number"], answered["callee_number"], answered["account_id"]) == ("101", "200", "acct1")
    assert json.loads(missed["extras"])["dstchannel"] == "SIP/201-00000003"
    assert json.loads(answered["extras"])["clid"] == '"Alice" <101>'
    assert load_mapping(MAPPINGS / "asterisk_cdr_custom.yaml")["billable_leg"] == "answered_longest"
