"""Kazoo / 2600Hz CDR JSON: the real samples, the three shapes, and broken input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrflow.dev import generate
from cdrflow.formats import get_parser
from cdrflow.formats.base import FormatError, ParseOptions

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "kazoo"


def parse(data: bytes, chunk_rows: int = 100_000):
    chunks = list(
        get_parser("kazoo_json").parse(io.BufferedReader(io.BytesIO(data)), ParseOptions(chunk_rows=chunk_rows))
    )
    calls = pd.concat([c.calls for c in chunks]) if chunks else None
    return calls, [p for c in chunks for p in c.problems]


def test_the_stored_couchdb_cdr_document():
    calls, problems = parse((SAMPLES / "cdr_fixture.json").read_bytes())
    (call,) = calls.to_dict("records")
    assert problems == []
    assert call["carrier_call_id"] == "ZjM1ODg3NTNhNTI4NmM5ZTA3MmFjZWYzMWJmZGNkZjc"
    assert call["start_time"] == pd.Timestamp("2013-07-29 21:52:39", tz="UTC")  # pvt_created 63542353959
    assert (call["account_id"], call["user_id"], call["realm"], call["authorizing_id"]) == (
        "7f89565344e3e6302df60168420e9265",
        "c119a4487f26920476ad6dec74471768",
        "account_realm",
        "81d406796c370b29a3cdc3713720ed61",
    )
    extras = json.loads(call["extras"])
    # owner_id is the user; username (seed 003's custom_channel_vars.username) is kept as it came
    assert extras["custom_channel_vars"] == {"authorizing_type": "device", "username": "account_username"}
    assert extras["request"] == "*97@accountrealm.com" and extras["pvt_type"] == "cdr"


def test_the_channel_destroy_webhook_payload():
    calls, _ = parse((SAMPLES / "webhooks_channel_destroy-samples.json").read_bytes())
    (call,) = calls.to_dict("records")
    assert call["end_time"] == pd.Timestamp("2019-05-06 08:10:09", tz="UTC")  # "63724349409", a string
    assert call["start_time"] == pd.Timestamp("2019-05-06 08:10:03", tz="UTC")  # minus 6 s
    assert (call["hangup_cause"], call["hangup_code"], call["billing_seconds"]) == ("NORMAL_CLEARING", 200, 6)
    assert call["to_uri"] == "+15552345678@matrix.test.com" and call["record_type"] == "complete"
    assert "to" not in json.loads(call["extras"])


@pytest.mark.parametrize("shape", ["array", "envelope", "lines"])
def test_array_envelope_and_json_lines_give_the_same_calls(shape):
    records = generate.kazoo_records(25, seed=4, day=generate.demo_day())
    data = {
        "array": json.dumps(records, indent=2),
        "envelope": json.dumps({"page_size": 25, "data": records, "status": "success"}),
        "lines": "\n".join(json.dumps(r) for r in records) + "\n",
    }[shape].encode()
    calls, problems = parse(data, chunk_rows=10)
    assert problems == [] and len(calls) == 25
    first = records[0]
    row = calls.iloc[0]
    assert row["carrier_call_id"] == first["call_id"] and row["line_number"] == 1
    assert row["end_time"] == pd.Timestamp(first["timestamp"] - 62167219200, unit="s", tz="UTC")
    assert json.loads(row["extras"])["rate"] == "0.0120"  # billing properties kept


def test_a_record_without_a_usable_time_is_reported_not_raised():
    good = {"call_id": "a", "timestamp": 63900000000, "duration_seconds": 10}
    data = "\n".join(json.dumps(r) for r in [good, {"call_id": "b"}, {"call_id": "c", "timestamp": "soon"}]).encode()
    calls, problems = parse(data + b"\n{broken\n")
    assert list(calls["carrier_call_id"]) == ["a"]
    assert calls.iloc[0]["end_time"] == pd.Timestamp("2024-11-28 08:00:00", tz="UTC")
    assert [(p.line_number, p.reasons[0].split(":")[1]) for p in problems] == [
        (2, "timestamp"),
        (3, "number"),
        (4, "json"),
    ]


def test_a_cut_array_and_non_json_are_format_errors():
    with pytest.raises(FormatError, match="cut short"):
        parse(b'[{"call_id": "a", "timestamp": 63900000000}, {"call_id": "b", "tim')
    with pytest.raises(FormatError, match="not Kazoo CDR JSON"):
        parse(b'"acct","src","dst"\n')
    with pytest.raises(FormatError, match="empty file"):
        parse(b"  \n")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_format_error(data):
    try:
        parse(data)
    except FormatError:
        pass
