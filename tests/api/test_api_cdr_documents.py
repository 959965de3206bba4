"""The CDRs API's documents over HTTP: seed 002/003 fields of a loaded Kazoo CDR, types, absent
conditional properties, billing properties from the current charge, filters, and CSV (header,
RFC 4180 quoting, formula cells neutralised, JSON unless CSV is asked for)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from tests.api.cdr_legs import BASE, add_leg, legs, range_params
from tests.api.conftest import auth

from cdrflow.api.cdr_documents import CSV_COLUMNS
from cdrflow.api.cdr_ids import cdr_id, parse_cdr_id
from cdrflow.api.csv_safety import neutralise
from cdrflow.intake.registry import register_file
from cdrflow.loading.transaction import load_file
from conftest import add_carrier

pytestmark = pytest.mark.integration

# -- filters ---------------------------------------------------------------------------------------


def test_kazoo_filters_on_whitelisted_fields(api, legs, make_token):
    add_leg(legs, "in-1", BASE, direction="inbound", caller_number="+61299990000", hangup_code=487)
    add_leg(legs, "out-1", BASE + timedelta(seconds=1), user_id="user9", realm="r.example")
    token = make_token("acctA")

    def ids(**filters):
        params = {**range_params(), **{f"filter_{k}": v for k, v in filters.items()}}
        response = api.get("/v2/accounts/acctA/cdrs", params=params, headers=auth(token))
        assert response.status_code == 200, response.text
        return sorted(d["call_id"] for d in response.json()["data"])

    assert ids(call_direction="inbound") == ["in-1"]
    assert ids(caller_id_number="+61299990000") == ["in-1"]
    assert ids(hangup_code="sip:487") == ["in-1"] and ids(hangup_code="487") == ["in-1"]
    assert ids(**{"custom_channel_vars.owner_id": "user9"}) == ["out-1"] and ids(owner_id="user9") == ["out-1"]
    assert ids(call_direction="outbound", caller_id_number="+61299990000") == []
    assert ids(imported="false") == ["in-1", "out-1"] and ids(imported="true") == []


# -- CSV -------------------------------------------------------------------------------------------


def test_csv_has_a_header_quotes_per_rfc4180_and_neutralises_formulas(api, legs, make_token):
    add_leg(
        legs,
        "f-1",
        BASE,
        caller_name='=HYPERLINK("http://evil.example","x")',
        callee_name='Smith, "Jo"\nline two',
        extras=json.dumps({"user_agent": "-2+3+cmd|' /C calc'!A0", "custom_channel_vars": {"username": "@sum"}}),
    )
    token = make_token("acctA")
    response = api.get(
        "/v1/accounts/acctA/cdrs",
        params={**range_params(), "file_name": "march.csv"},
        headers={**auth(token), "Accept": "text/csv"},
    )
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="march.csv"'
    reader = csv.reader(io.StringIO(response.text, newline=""))
    header, row = next(reader), next(reader)
    assert header == list(CSV_COLUMNS) and "custom_channel_vars.owner_id" in header
    cell = dict(zip(header, row))
    assert cell["caller_id_name"] == "'" + '=HYPERLINK("http://evil.example","x")'
    assert cell["callee_id_name"] == 'Smith, "Jo"\nline two'  # quoted, kept whole
    assert cell["user_agent"].startswith("'-2+3") and cell["custom_channel_vars.username"] == "'@sum"
    assert cell["caller_id_number"] == "+15551230001" and cell["custom_channel_vars.owner_id"] == "user1"
    assert cell["duration_seconds"] == "60" and cell["imported"] == "false" and cell["hangup_code"] == "sip:200"
    assert response.text.split("\r\n")[0] == ",".join(CSV_COLUMNS)

    named = api.get(
        "/v1/accounts/acctA/cdrs",
        params={**range_params(), "accept": "text/csv"},
        headers={**auth(token), "X-File-Name": "../x y.csv"},
    )
    assert named.headers["content-disposition"].startswith('attachment; filename="x_y.csv"')


@pytest.mark.parametrize("accept", ["*/*", "application/json", None, "text/html", "text/csv;q=0.1, */*"])
def test_json_unless_csv_is_preferred(api, legs, make_token, accept):
    add_leg(legs, "j-1", BASE)
    headers = auth(make_token("acctA"))
    if accept:
        headers["Accept"] = accept
    response = api.get("/v1/accounts/acctA/cdrs", params=range_params(), headers=headers)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["data"][0]["call_id"] == "j-1"


def test_the_csv_injection_rule():
    for dangerous in ("=1+1", "@SUM(A1)", "\tx", "\rx", "+cmd", "-", "+", "-2+3+cmd|' /C calc'!A0", "+1 =2"):
        assert neutralise(dangerous) == "'" + dangerous
    for safe in ("+15551230001", "-1.5", "+61 2 9999 9999", "+1 (555) 123-4567", "Alice", "", "1=1"):
        assert neutralise(safe) == safe


# -- the documents ---------------------------------------------------------------------------------

SEED_002_LIST = {
    "id",
    "digits_dialed",
    "duration_seconds",
    "billing_seconds",
    "ringing_seconds",
    "call_direction",
    "timestamp",
    "hangup_cause",
    "call_id",
    "to_uri",
    "from_uri",
}
KAZOO_DOC = {
    "app_name": "ecallmgr",
    "app_version": "4.3.0",
    "billing_seconds": 6,
    "call_direction": "inbound",
    "call_id": "NDlkNGI3OTZlMDgzNWQxNGYxNTA3NjQ4NDZjNDFkOTc",
    "callee_id_number": "+15552345678",
    "caller_id_name": "Test Man",
    "caller_id_number": "+15556783945",
    "channel_authorized": "true",
    "custom_channel_vars": {
        "account_id": "acctK",
        "authorizing_id": "7f2b66a620cf9523d349cc5de8f21f37",
        "authorizing_type": "device",
        "owner_id": "d860229e722bf8f738737365b0b1e333",
        "realm": "matrix.test.com",
        "ecallmgr_node": "ecallmgr@kazoo.local",
    },
    "duration_seconds": 6,
    "fax_success": "false",
    "from": "+15556783945@matrix.test.com",
    "from_uri": "sip:+15556783945@matrix.test.com",
    "handling_server_name": "fs1.kazoo.local",
    "hangup_cause": "NORMAL_CLEARING",
    "hangup_code": "sip:200",
    "inception": "off-net",
    "interaction_id": "63724349403-1cd2e1ea",
    "other_leg_call_id": "af1e1e12f1bcf519a96f2235ab8eeec4",
    "remote_sdp": "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n",
    "request": "+15552345678@matrix.test.com",
    "ringing_seconds": 0,
    "timestamp": "63724349409",
    "to": "+15552345678@matrix.test.com",
    "_id": "201905-NDlkNGI3OTZlMDgzNWQxNGYxNTA3NjQ4NDZjNDFkOTc",
    "pvt_type": "cdr",
}


def test_a_loaded_kazoo_document_comes_back_with_its_fields(api, legs, store, make_token):
    add_carrier(legs, "kz", file_type="kazoo_json")
    reg = register_file(
        legs,
        store,
        io.BytesIO(json.dumps([KAZOO_DOC]).encode()),
        file_name="cdrs.json",
        carrier="kz",
        file_source="upload",
    )
    assert load_file(legs, store, reg.file_id).loaded == 1
    token = make_token("acctK")
    g = 63724349409
    listed = api.get("/v1/accounts/acctK/cdrs", params=range_params(g - 60, g + 60), headers=auth(token)).json()
    (item,) = listed["data"]
    assert SEED_002_LIST <= set(item) and item["timestamp"] == g and item["digits_dialed"] == "none"
    assert item["imported"] is True and "custom_channel_vars" not in item and "callee_id_name" not in item
    assert parse_cdr_id(item["id"]) is not None and item["id"].startswith("201905-")

    doc = api.get(f"/v2/accounts/acctK/cdrs/{item['id']}", headers=auth(token)).json()["data"]
    for key in ("app_name", "app_version", "request", "from", "interaction_id", "remote_sdp", "inception"):
        assert doc[key] == KAZOO_DOC[key], key
    assert doc["to_uri"] == KAZOO_DOC["to"]  # no to_uri in the source: the loader keeps "to" there
    assert (doc["duration_seconds"], doc["billing_seconds"], doc["ringing_seconds"]) == (6, 6, 0)
    assert doc["hangup_code"] == "sip:200" and doc["timestamp"] == g
    assert doc["channel_authorized"] is True and doc["fax_success"] is False
    assert doc["media_server"] == doc["handling_server_name"] == "fs1.kazoo.local"
    ccv = doc["custom_channel_vars"]
    assert ccv["account_id"] == "acctK" and ccv["owner_id"] == KAZOO_DOC["custom_channel_vars"]["owner_id"]
    assert ccv["authorizing_type"] == "device" and ccv["realm"] == "matrix.test.com" and ccv["inception"] == "off-net"
    assert "_id" not in doc and "pvt_type" not in doc and None not in doc.values()
    assert "callee_id_name" not in doc and "disposition" not in doc  # absent, not null
    # by user: the owner
    owner = KAZOO_DOC["custom_channel_vars"]["owner_id"]
    mine = api.get(f"/v1/accounts/acctK/users/{owner}/cdrs", params=range_params(g - 60, g + 60), headers=auth(token))
    assert [d["id"] for d in mine.json()["data"]] == [item["id"]]
    assert (
        api.get(
            "/v2/accounts/acctK/cdrs",
            params={**range_params(g - 60, g + 60), "filter_imported": "true"},
            headers=auth(token),
        ).json()["data"][0]["id"]
        == item["id"]
    )


def test_billing_properties_come_from_the_current_sell_charge(api, legs, make_token):
    row = add_leg(legs, "billed", BASE, seconds=125)
    add_leg(legs, "unrated", BASE + timedelta(seconds=5))
    breakdown = {
        "rate": "0.0125",
        "connect_fee": "0.05",
        "base_cost": "0.0625",
        "rate_minimum": 30,
        "rate_increment": 6,
        "destination": "UK London",
    }
    with legs.begin() as conn:
        billrun = conn.execute(
            text(
                "INSERT INTO billruns (kind, period_start, period_end, scope, version, status) "
                "VALUES ('daily', '2026-03-10', '2026-03-11', 'all', 1, 'closed') RETURNING id"
            )
        ).scalar_one()
        for current, cost in ((False, "9.99"), (True, "0.1063")):
            conn.execute(
                text("""
                INSERT INTO charges (billrun_id, call_id, carrier, record_key, start_time, account_id, side,
                                     deck, destination, billing_seconds, billed_seconds, cost, currency,
                                     breakdown, current)
                VALUES (:b, 0, 'acme', 'billed', :st, 'acctA', 'sell', 'retail', 'UK London', 120, 120,
                        CAST(:cost AS numeric), 'GBP', CAST(:bd AS jsonb), :current)
                """),
                {"b": billrun, "st": row["start_time"], "cost": cost, "bd": json.dumps(breakdown), "current": current},
            )
    token = make_token("acctA")
    data = api.get("/v1/accounts/acctA/cdrs", params=range_params(), headers=auth(token)).json()["data"]
    by_call = {d["call_id"]: d for d in data}
    billed = by_call["billed"]
    assert (billed["rate"], billed["base_cost"], billed["surcharge"], billed["cost"]) == (
        "0.0125",
        "0.0625",
        "0.05",
        "0.1063",
    )
    assert (billed["rate_minimum"], billed["rate_increment"], billed["rate_name"], billed["currency"]) == (
        30,
        6,
        "UK London",
        "GBP",
    )
    assert not {"rate", "cost", "rate_name"} & set(by_call["unrated"])
    detail = api.get(f"/v1/accounts/acctA/cdrs/{billed['id']}", headers=auth(token)).json()
    assert detail["data"]["cost"] == "0.1063" and len(detail["revision"]) == 40


def test_the_cdr_id_names_the_primary_key_and_its_month():
    start = datetime(2026, 3, 31, 23, 59, 59, 123456, tzinfo=UTC)
    made = cdr_id("acme", "uid|with\x1fodd#chars", start)
    assert made.startswith("202603-") and "/" not in made and "=" not in made
    key = parse_cdr_id(made)
    assert key is not None and (key.carrier, key.record_key, key.start_time) == ("acme", "uid|with\x1fodd#chars", start)
    assert parse_cdr_id("202604-" + made[7:]) is None  # another month: no such CDR
