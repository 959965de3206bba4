"""Seed 004's billing feed over HTTP: the test vectors of ``api-contract.md`` §A4.1 (ids 1..5),
login/password and tokens, isolation between accounts, the named filters, the page cap, formula
cells neutralised, bad parameters 400 (never 500), and no password in the server's log.

The records are made by the real billing code: Asterisk lines loaded by the loader, a deck,
accounts, one billrun per account (as tests/test_feed_and_rerate.py does)."""

from __future__ import annotations

import csv
import io
import time
from datetime import date
from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from tests.api.conftest import auth
from tests.test_billrun import UK, add_account, billing, load, master_line, one_minute, store_deck

from cdrflow.api.app import create_app
from cdrflow.api.deps import ApiSettings
from cdrflow.billing import feed
from cdrflow.billing.billrun import run_billrun
from cdrflow.billing.model import Rate, Slot
from conftest import add_carrier

pytestmark = pytest.mark.integration

PASSWORD = "b1ll1ngf33d"
MOBILE = "447911123456"
HEADER = ",".join(feed.COLUMNS)


@pytest.fixture
def feed_data(api_engine, billing, store):
    """Account 1001: five records, ids 1..5 (four calls to UK numbers, one to a UK mobile, one
    of them from a caller id that is a spreadsheet formula); account 1002: ids 6 and 7."""
    engine = billing
    add_carrier(engine, "acme")
    mobile = Rate("4479", "UK mobile", (Slot(0, Decimal("0.30"), 60, 60),), call_type="MG")
    store_deck(engine, "retail", date(2026, 10, 1), (one_minute("44", "0.10", "UK"), mobile))
    add_account(engine, "1001", "retail")
    add_account(engine, "1002", "retail")
    calls = [
        ("a1", "1001", UK, "2026-11-01 10:00:00", 61),
        ("a2", "1001", MOBILE, "2026-11-01 11:00:00", 10),
        ("a3", "1001", UK, "2026-11-01 12:00:00", 0),
        ("a4", "1001", MOBILE, "2026-11-01 13:00:00", 120),
        ("a5", "1001", UK, "2026-11-01 14:00:00", 30),
        ("b1", "1002", UK, "2026-11-01 10:30:00", 61),
        ("b2", "1002", UK, "2026-11-01 11:30:00", 5),
    ]
    load(engine, store, [master_line(*c) for c in calls])
    with engine.begin() as conn:
        conn.execute(text("UPDATE accounts SET billing_group = 'north' WHERE account_id = '1001'"))
        conn.execute(text("UPDATE calls SET caller_number = '=1+2', caller_e164 = NULL WHERE record_key LIKE 'a5%'"))
        conn.execute(text("ALTER SEQUENCE billing_feed_id_seq RESTART WITH 1"))  # ids 1..5 as in §A4.1
    run_billrun(engine, "daily", "2026-11-01", "1001")
    run_billrun(engine, "daily", "2026-11-01", "1002")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM billing_feed")).scalar_one() == 7
    return engine


@pytest.fixture
def passwords(feed_data, make_token):
    make_token("1001", kind="feed_password", secret=PASSWORD)
    make_token("1002", kind="feed_password", secret="another-s3cret")


def rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines()[0] == HEADER
    return list(csv.DictReader(io.StringIO(response.text)))


def ids(response: httpx.Response) -> list[int]:
    return [int(r["id"]) for r in rows(response)]


def get_feed(api: httpx.Client, login: str = "1001", password: str = PASSWORD, **params) -> httpx.Response:
    return api.get("/billing/feed", params={"login": login, "password": password, **params})


def test_the_seed_test_vectors(api, passwords):
    assert ids(get_feed(api, fromid=3)) == [3, 4, 5]
    assert ids(get_feed(api, fromid=5)) == [5]
    empty = get_feed(api, fromid=6)  # 6 and 7 are account 1002's
    assert ids(empty) == [] and empty.text == HEADER + "\n"
    assert ids(get_feed(api)) == [1, 2, 3, 4, 5]
    assert ids(get_feed(api, fromid=0)) == [1, 2, 3, 4, 5]
    assert ids(get_feed(api, fromid="")) == [1, 2, 3, 4, 5]  # a client's template before its first poll
    bad = get_feed(api, fromid="x")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/plain")
    assert bad.text.startswith("error: fromid")


def test_records_are_the_accounts_charged_calls(api, passwords):
    records = {r["id"]: r for r in rows(get_feed(api))}
    first, mobile = records["1"], records["2"]
    assert (first["record"], first["account"], first["billing_period"], first["billing_group"]) == (
        "charge", "1001", "2026-11-01", "north",
    )  # fmt: skip
    assert (first["date"], first["datetime"], first["to"], first["seconds"], first["billed_seconds"]) == (
        "2026-11-01", "2026-11-01 10:00:00", UK, "61", "120",
    )  # fmt: skip
    assert (first["cost"], first["currency"], first["type"], first["description"]) == (
        "0.2000", "EUR", "I", "International Calls",
    )  # fmt: skip
    assert (mobile["type"], mobile["sub_type"], mobile["cost"]) == ("M", "MG", "0.3000")


def test_a_formula_in_a_cell_is_neutralised(api, passwords):
    records = {r["id"]: r for r in rows(get_feed(api))}
    assert records["5"]["from"] == "'=1+2"  # the caller id, as a spreadsheet shows text
    assert records["1"]["from"] == "100" and records["1"]["cost"] == "0.2000"  # numbers untouched


def test_unknown_login_and_wrong_password_get_the_same_401(api, passwords):
    wrong_password = get_feed(api, password="not-it")
    unknown_login = get_feed(api, login="9999")
    other_accounts_password = get_feed(api, password="another-s3cret")
    for response in (wrong_password, unknown_login, other_accounts_password):
        assert response.status_code == 401
        assert response.text == "error: invalid login or password\n"
    assert get_feed(api, password="").status_code == 401
    assert api.get("/billing/feed", params={"login": "1001"}).status_code == 401
    assert api.get("/billing/feed").status_code == 401
    # a password with SQL in it is just a wrong password
    assert get_feed(api, password="' OR '1'='1").status_code == 401


def test_an_account_sees_only_its_own_records(api, passwords, make_token):
    assert ids(get_feed(api, login="1002", password="another-s3cret")) == [6, 7]
    assert ids(get_feed(api, fromid=1)) == [1, 2, 3, 4, 5]  # never 6, 7
    token = make_token("1001")
    assert ids(api.get("/billing/feed", headers=auth(token))) == [1, 2, 3, 4, 5]
    assert api.get("/billing/feed", params={"account": "1002"}, headers=auth(token)).status_code == 401
    assert ids(api.get("/billing/feed", params={"account": "1001"}, headers=auth(token))) == [1, 2, 3, 4, 5]


def test_an_operator_token_sees_every_account(api, passwords, make_token):
    operator = auth(make_token(None))
    assert ids(api.get("/billing/feed", headers=operator)) == [1, 2, 3, 4, 5, 6, 7]
    assert ids(api.get("/billing/feed", params={"account": "1002", "fromid": 7}, headers=operator)) == [7]
    assert api.get("/billing/feed", headers=auth("not-a-token")).status_code == 401


def test_limit_and_paging_by_the_last_id(api, passwords):
    assert ids(get_feed(api, limit=2)) == [1, 2]
    assert ids(get_feed(api, fromid=2, limit=2)) == [2, 3]  # the client re-polls with the last id
    assert ids(get_feed(api, limit=1000)) == [1, 2, 3, 4, 5]


def test_the_page_cap_holds_whatever_limit_asks(feed_data, make_token, engine):
    """A server with a cap of 2 (in-process: the settings are the application's)."""
    make_token("1001", kind="feed_password", secret=PASSWORD)
    with TestClient(create_app(engine, ApiSettings(feed_page_cap=2)), base_url="http://test") as client:
        got = client.get("/billing/feed", params={"login": "1001", "password": PASSWORD})
        assert [r["id"] for r in csv.DictReader(io.StringIO(got.text))] == ["1", "2"]
        got = client.get("/billing/feed", params={"login": "1001", "password": PASSWORD, "fromid": 2, "limit": 50})
        assert [r["id"] for r in csv.DictReader(io.StringIO(got.text))] == ["2", "3"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": "M"}, [2, 4]),
        ({"type": "I"}, [1, 3, 5]),
        ({"type": "0"}, []),  # a code, not a number
        ({"min_seconds": 60}, [1, 4]),
        ({"to": "4479"}, [2, 4]),
        ({"to": "+4479"}, [2, 4]),
        ({"to": MOBILE, "min_seconds": 100}, [4]),
        ({"from": "100"}, [1, 2, 3, 4]),
        ({"billing_period": "2026-11-01"}, [1, 2, 3, 4, 5]),
        ({"billing_period": "2026-11"}, []),  # a daily billrun's period is a day
        ({"billing_group": "north"}, [1, 2, 3, 4, 5]),
        ({"billing_group": "south"}, []),
        ({"date_from": "2026-11-01", "date_to": "2026-11-01"}, [1, 2, 3, 4, 5]),
        ({"date_from": "2026-11-02"}, []),
        ({"date_to": "2026-10-31"}, []),
        ({"fromid": 3, "type": "M"}, [4]),
    ],
)
def test_named_filters(api, passwords, params, expected):
    assert ids(get_feed(api, **params)) == expected


SQL = "1' OR '1'='1"
HUGE = "9" * 40
LONG = "7" * 5000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("fromid", "-1"),
        ("fromid", HUGE),
        ("fromid", "1.5"),
        ("fromid", SQL),
        ("limit", "0"),
        ("limit", HUGE),
        ("limit", SQL),
        ("login", SQL),
        ("login", LONG),
        ("login", "1001\x00"),
        ("password", LONG),
        ("account", SQL),
        ("date_from", "2026-13-01"),
        ("date_from", SQL),
        ("date_to", LONG),
        ("billing_period", "2026-11'--"),
        ("billing_period", LONG),
        ("billing_group", "north'; DROP TABLE billing_feed; --"),
        ("billing_group", "\x00"),
        ("billing_group", LONG),
        ("min_seconds", "-1"),
        ("min_seconds", HUGE),
        ("to", "44%"),
        ("to", SQL),
        ("to", LONG),
        ("from", "_"),
        ("type", "M'"),
        ("type", "MMMM"),
    ],
)
def test_bad_parameters_answer_400_in_plain_text(api, passwords, name, value):
    response = get_feed(api, **{name: value})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/plain") and response.text.startswith(f"error: {name}")
    assert PASSWORD not in response.text


def test_dates_in_the_wrong_order_answer_400(api, passwords):
    response = get_feed(api, date_from="2026-11-02", date_to="2026-11-01")
    assert response.status_code == 400 and "before date_from" in response.text


def test_the_password_never_reaches_the_log(api, api_server, passwords):
    marker = "fromid=4&limit=3"
    assert get_feed(api, fromid=4, limit=3).status_code == 200
    assert get_feed(api, password="wr0ng-" + PASSWORD, fromid=4, limit=3).status_code == 401
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and api_server.log().count(marker) < 2:
        time.sleep(0.1)
    log = api_server.log()
    lines = [line for line in log.splitlines() if "/billing/feed" in line and marker in line]
    assert len(lines) >= 2, log[-2000:]
    assert all("password=***" in line for line in lines)
    assert PASSWORD not in log


def test_an_unknown_login_costs_a_password_check_too(api_engine, make_token, monkeypatch):
    """The same scrypt work for an unknown login as for a wrong password, so the time an answer
    takes does not tell which account numbers have a feed password."""
    from cdrflow.warehouse import credentials

    make_token("1001", kind="feed_password", secret=PASSWORD)
    checked: list[str] = []
    real = credentials._password_matches
    monkeypatch.setattr(credentials, "_password_matches", lambda p, h: checked.append(p) or real(p, h))
    with api_engine.connect() as conn:
        assert credentials.principal_for_feed_login(conn, "1001", "wrong") is None
        assert credentials.principal_for_feed_login(conn, "9999", "wrong") is None
    assert checked == ["wrong", "wrong"]
