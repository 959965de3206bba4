"""The CDRs API (seeds 002 and 003, Kazoo crossbar) over HTTP: the seed examples, Gregorian seconds
and ranges, isolation between accounts, bad input answering 400/404 (never 500), v1 streaming and
v2 keyset pages, and the partitions a list reads. Fields, filters and CSV: test_api_cdr_documents."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from tests.api.cdr_legs import BASE, G, add_leg, kazoo_error, legs, range_params
from tests.api.conftest import auth

from cdrflow.api import cdr_query
from cdrflow.api.cdr_ids import cdr_id
from cdrflow.api.kazoo import from_gregorian, time_range, to_gregorian

pytestmark = pytest.mark.integration

# -- seed examples -------------------------------------------------------------------------------


def test_every_seed_example(api: httpx.Client, legs, make_token):
    now = datetime.now(UTC).replace(microsecond=0)
    add_leg(legs, "recent-1", now - timedelta(hours=2))
    add_leg(legs, "recent-2", now - timedelta(hours=1), user_id="user2")
    add_leg(legs, "old", now - timedelta(days=40))
    token = make_token("acctA")

    # GET /v1/accounts/{ACCOUNT_ID}/cdrs: the last 31 days (+1 h), newest first
    body = api.get("/v1/accounts/acctA/cdrs", headers=auth(token)).json()
    assert body["status"] == "success" and body["auth_token"] == token
    assert [d["call_id"] for d in body["data"]] == ["recent-2", "recent-1"]
    assert body["page_size"] == 2 and "next_start_key" not in body and body["request_id"]

    # GET /v1/accounts/{ACCOUNT_ID}/users/{USER_ID}/cdrs
    body = api.get("/v1/accounts/acctA/users/user2/cdrs", headers=auth(token)).json()
    assert [d["call_id"] for d in body["data"]] == ["recent-2"]

    # GET /v1/accounts/{ACCOUNT_ID}/cdrs/{CDR_ID}
    some_id = body["data"][0]["id"]
    one = api.get(f"/v1/accounts/acctA/cdrs/{some_id}", headers=auth(token)).json()
    assert one["status"] == "success" and one["data"]["id"] == some_id and one["data"]["call_id"] == "recent-2"
    assert one["data"]["custom_channel_vars"]["owner_id"] == "user2"

    # GET /v1/accounts/{ACCOUNT_ID}/cdrs?created_from={FROM_TIMESTAMP}&created_to={TO_TIMESTAMP}
    old_end = to_gregorian(now - timedelta(days=40))
    body = api.get(
        "/v1/accounts/acctA/cdrs", params=range_params(old_end - 10, old_end + 10), headers=auth(token)
    ).json()
    assert [d["call_id"] for d in body["data"]] == ["old"]

    # GET -H "Accept: text/csv" /v1/accounts/{ACCOUNT_ID}/cdrs
    response = api.get("/v1/accounts/acctA/cdrs", headers={**auth(token), "Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["call_id"] for r in rows] == ["recent-2", "recent-1"]

    # seed 002: -H "Accept: application/octet-stream" .../cdrs?auth_token=YOUR_AUTH_TOKEN
    response = api.get(
        "/v1/accounts/acctA/cdrs", params={"auth_token": token}, headers={"Accept": "application/octet-stream"}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.text.startswith("id,call_id,timestamp,") and response.text.count("\r\n") == 3


# -- Gregorian seconds and ranges ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc", "gregorian"),
    [
        ("1970-01-01T00:00:00+00:00", 62167219200),
        ("2013-07-29T21:52:39+00:00", 63542353959),
        ("2019-05-06T08:10:09+00:00", 63724349409),
        ("2022-07-29T00:00:00+00:00", 63826272000),
        ("2022-07-29T06:21:27+00:00", 63826294887),
    ],
)
def test_gregorian_vectors(utc, gregorian):
    moment = datetime.fromisoformat(utc)
    assert to_gregorian(moment) == gregorian and from_gregorian(gregorian) == moment


def test_the_range_is_inclusive_at_both_ends_and_selects_on_the_legs_end(api, legs, make_token):
    end = datetime(2022, 7, 29, 6, 21, 27, 400000, tzinfo=UTC)  # 0.4 s into the second 63826294887
    add_leg(legs, "edge", end, seconds=3600)  # started an hour earlier, at 05:21:27
    token = make_token("acctA")

    def ids(start, stop):
        response = api.get("/v1/accounts/acctA/cdrs", params=range_params(start, stop), headers=auth(token))
        assert response.status_code == 200, response.text
        return [d["call_id"] for d in response.json()["data"]]

    assert ids(63826294887, 63826294887) == ["edge"]
    assert ids(63826294800, 63826294886) == [] and ids(63826294888, 63826294900) == []
    assert ids(63826294887 - 3600, 63826294887 - 1) == []  # its start is not what is filtered
    doc = api.get("/v1/accounts/acctA/cdrs", params=range_params(63826294887, 63826294887), headers=auth(token))
    assert doc.json()["data"][0]["timestamp"] == 63826294887


def test_range_errors_are_kazoos_date_range_messages(api, make_token):
    token = make_token("acctA")
    response = api.get("/v1/accounts/acctA/cdrs", params=range_params(63826294887, 63826294886), headers=auth(token))
    body = kazoo_error(response, 400)
    message = "created_to 63826294886 is prior to created_from 63826294887"
    assert body["message"] == "date_range" and body["data"]["created_from"]["date_range"]["message"] == message

    response = api.get(
        "/v2/accounts/acctA/cdrs", params=range_params(63826272000, 63826272000 + 2682001), headers=auth(token)
    )
    message = "created_to 63828954001 is more than 2682000 seconds from created_from 63826272000"
    assert kazoo_error(response, 400)["data"]["created_from"]["date_range"]["message"] == message
    # exactly 31 days and an hour is allowed
    ok = api.get(
        "/v2/accounts/acctA/cdrs", params=range_params(63826272000, 63826272000 + 2682000), headers=auth(token)
    )
    assert ok.status_code == 200
    # created_from alone: created_to is now, so an old start is too long a range
    too_old = api.get("/v1/accounts/acctA/cdrs", params={"created_from": 63826272000}, headers=auth(token))
    assert "is more than 2682000 seconds" in kazoo_error(too_old, 400)["data"]["created_from"]["date_range"]["message"]


def test_time_range_defaults_to_the_last_31_days_and_an_hour():
    now = datetime(2026, 3, 10, 12, 0, 0, 500000, tzinfo=UTC)
    window = time_range(None, None, now)
    assert window.created_to == to_gregorian(now) and window.created_from == window.created_to - 2682000


# -- isolation -------------------------------------------------------------------------------------


def test_an_account_sees_only_its_own_cdrs(api, legs, make_token):
    add_leg(legs, "a-leg", BASE)
    add_leg(legs, "b-leg", BASE, account="acctB", user_id="userB")
    token_a, operator = make_token("acctA"), make_token(None)
    b_id = cdr_id("acme", "b-leg", BASE - timedelta(seconds=60))

    for path in ("/v1/accounts/acctB/cdrs", "/v2/accounts/acctB/users/userB/cdrs", f"/v1/accounts/acctB/cdrs/{b_id}"):
        kazoo_error(api.get(path, params=range_params(), headers=auth(token_a)), 401)
    # B's CDR id under A's own path: as if it did not exist
    assert kazoo_error(api.get(f"/v2/accounts/acctA/cdrs/{b_id}", headers=auth(token_a)), 404)["message"] == (
        "bad_identifier"
    )
    mine = api.get("/v1/accounts/acctA/cdrs", params=range_params(), headers=auth(token_a)).json()["data"]
    assert [d["call_id"] for d in mine] == ["a-leg"]
    # an operator sees B under B's path
    theirs = api.get(f"/v1/accounts/acctB/cdrs/{b_id}", headers=auth(operator)).json()["data"]
    assert theirs["call_id"] == "b-leg"
    kazoo_error(api.get("/v1/accounts/acctA/cdrs"), 401)  # no token at all


def test_methods_other_than_get_answer_405_in_the_kazoo_envelope(api, make_token):
    token = make_token("acctA")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/v1/accounts/acctA/cdrs", "/v2/accounts/acctA/cdrs/x", "/v1/accounts/acctA/users/u/cdrs"):
            kazoo_error(api.request(method, path, headers=auth(token)), 405)
    kazoo_error(api.get("/v2/accounts/acctA/nothing", headers=auth(token)), 404)  # unknown path, same envelope


# -- bad input -------------------------------------------------------------------------------------

SQL = "1'; DROP TABLE calls; --"
LONG = "9" * 5000


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/accounts/acctA/cdrs", {"created_from": SQL}, 400),
        ("/v1/accounts/acctA/cdrs", {"created_to": SQL}, 400),
        ("/v1/accounts/acctA/cdrs", {"created_from": "1.5"}, 400),
        ("/v1/accounts/acctA/cdrs", {"created_to": LONG}, 400),
        ("/v1/accounts/acctA/cdrs", {"created_from": "-5"}, 400),
        ("/v1/accounts/acctA/cdrs", {"created_from": "99999999999999", "created_to": "99999999999999"}, 400),
        ("/v2/accounts/acctA/cdrs", {"page_size": SQL}, 400),
        ("/v2/accounts/acctA/cdrs", {"page_size": "0"}, 400),
        ("/v2/accounts/acctA/cdrs", {"page_size": LONG}, 400),
        ("/v2/accounts/acctA/cdrs", {"start_key": SQL}, 400),
        ("/v2/accounts/acctA/cdrs", {"start_key": "QUJD" * 600}, 400),
        ("/v2/accounts/acctA/cdrs", {"paginate": SQL}, 400),
        ("/v2/accounts/acctA/cdrs", {"ascending": SQL}, 400),
        ("/v2/accounts/acctA/cdrs", {"filter_caller_id_number": "x" * 300}, 400),
        ("/v2/accounts/acctA/cdrs", {"filter_hangup_code": SQL}, 400),
        ("/v2/accounts/acctA/cdrs", {"filter_imported": SQL}, 400),
        ("/v2/accounts/acctA/cdrs", {f"filter_{SQL}": "1"}, 400),
        ("/v2/accounts/acctA/cdrs", {"filter_extras": "1"}, 400),
        ("/v2/accounts/acctA/cdrs", {"file_name": "x" * 300, "accept": "csv"}, 400),
        ("/v2/accounts/acctA/cdrs", {"auth_token_extra": LONG}, 400),
        (f"/v1/accounts/{'a' * 300}/cdrs", {}, 400),
        (f"/v1/accounts/acctA/users/{'u' * 300}/cdrs", {}, 400),
        ("/v1/accounts/acctA/cdrs/" + "A" * 3000, {}, 400),
        ("/v1/accounts/acctA/cdrs/" + SQL.replace(" ", "%20"), {}, 404),
        ("/v1/accounts/acctA/cdrs/202603-" + "QUJD", {}, 404),
        ("/v1/accounts/acctA/cdrs/209901-YWNtZR8xMjMfeA", {}, 404),  # month not the start's
        ("/v1/accounts/acctA/users/" + SQL.replace(" ", "%20") + "/cdrs", {}, 200),
        ("/v2/accounts/acctA/cdrs", {"filter_caller_id_number": SQL}, 200),
        ("/v2/accounts/acctA/cdrs", {"filter_caller_id_name": "O'Brien"}, 200),
    ],
)
def test_bad_values_answer_400_or_404_never_500(api, legs, make_token, path, params, status):
    add_leg(legs, "a-leg", BASE)
    params = {**range_params(), **params} if "cdrs/" not in path else params
    response = api.get(path, params=params, headers=auth(make_token("acctA")))
    assert response.status_code == status, response.text
    if status != 200:
        kazoo_error(response, status)
    else:
        assert response.json()["data"] == []
    with legs.connect() as conn:  # the table is still there, with its row
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar_one() == 1


def test_an_operator_on_a_strange_account_path_gets_an_empty_list(api, legs, make_token):
    add_leg(legs, "a-leg", BASE)
    response = api.get(
        "/v1/accounts/" + SQL.replace(" ", "%20") + "/cdrs", params=range_params(), headers=auth(make_token(None))
    )
    assert response.status_code == 200 and response.json()["data"] == []


# -- v1 streaming and v2 pages --------------------------------------------------------------------


def test_a_v2_walk_through_pages_equals_the_v1_list(api, legs, make_token):
    for n in range(7):
        add_leg(legs, f"c{n}", BASE + timedelta(minutes=n // 2), seconds=30 + n)  # ties on the end second
    add_leg(legs, "other-acct", BASE, account="acctB")
    token = make_token("acctA")
    v1 = api.get("/v1/accounts/acctA/cdrs", params=range_params(), headers=auth(token)).json()
    assert v1["page_size"] == 7 and "next_start_key" not in v1
    v1_ids = [d["id"] for d in v1["data"]]
    stamps = [d["timestamp"] for d in v1["data"]]
    assert stamps == sorted(stamps, reverse=True)

    for ascending, expected in ((None, v1_ids), ("true", v1_ids[::-1])):
        walked, pages, key = [], 0, None
        while True:
            params = {**range_params(), "page_size": 3}
            if ascending:
                params["ascending"] = ascending
            if key:
                params["start_key"] = key
            page = api.get("/v2/accounts/acctA/cdrs", params=params, headers=auth(token)).json()
            pages += 1
            walked += [d["id"] for d in page["data"]]
            assert page["start_key"] == (key or page["start_key"]) and page["page_size"] == len(page["data"])
            key = page.get("next_start_key")
            if key is None:
                break
        assert walked == expected and pages == 3

    # v2 defaults to pages of 50; paginate=false streams the whole range like v1
    v2 = api.get("/v2/accounts/acctA/cdrs", params=range_params(), headers=auth(token)).json()
    assert [d["id"] for d in v2["data"]] == v1_ids and "next_start_key" not in v2
    whole = api.get("/v2/accounts/acctA/cdrs", params={**range_params(), "paginate": "false"}, headers=auth(token))
    assert [d["id"] for d in whole.json()["data"]] == v1_ids
    # a page_size over the cap is served at the cap
    capped = api.get("/v2/accounts/acctA/cdrs", params={**range_params(), "page_size": 5000}, headers=auth(token))
    assert capped.status_code == 200 and capped.json()["page_size"] == 7


def test_v1_streams_a_long_list_in_valid_json(api, legs, make_token):
    with legs.begin() as conn:
        conn.execute(text("SELECT cdrflow_ensure_calls_partition(:ts)"), {"ts": BASE})
        conn.execute(
            text("""
            INSERT INTO calls (carrier, carrier_call_id, record_key, start_time, end_time, file_id,
                               duration_seconds, account_id)
            SELECT 'acme', 'bulk-' || n, 'bulk-' || n, :base + n * interval '1 second',
                   :base + n * interval '1 second' + interval '30 seconds', 0, 30, 'acctA'
            FROM generate_series(1, 2500) AS n
            """),
            {"base": BASE},
        )
    response = api.get("/v1/accounts/acctA/cdrs", params=range_params(), headers=auth(make_token("acctA")))
    assert response.status_code == 200 and response.headers.get("transfer-encoding") == "chunked"
    body = response.json()
    assert body["page_size"] == 2500 and len({d["id"] for d in body["data"]}) == 2500
    assert body["data"][0]["call_id"] == "bulk-2500" and body["status"] == "success"
    csv_response = api.get(
        "/v2/accounts/acctA/cdrs", params={**range_params(), "accept": "csv"}, headers=auth(make_token("acctA"))
    )
    assert csv_response.headers.get("transfer-encoding") == "chunked"
    assert len(list(csv.reader(io.StringIO(csv_response.text)))) == 2501


def test_the_query_scans_only_the_months_of_the_range(legs):
    with legs.begin() as conn:
        for month in ("2026-01-15", "2026-02-15", "2026-03-15", "2026-04-15"):
            conn.execute(text("SELECT cdrflow_ensure_calls_partition(CAST(:ts AS timestamptz))"), {"ts": month})
        window = time_range(str(to_gregorian(datetime(2026, 3, 1, 6, tzinfo=UTC))), str(G), BASE)
        sql = str(
            cdr_query.listing("acctA", window, limit=51).compile(
                dialect=conn.dialect, compile_kwargs={"literal_binds": True}
            )
        )
        plan = "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + sql)))
    assert "calls_2026_03" in plan and "calls_2026_02" in plan  # the day of margin before March 1, 06:00
    assert "calls_2026_01" not in plan and "calls_2026_04" not in plan
