"""Seed 001 report requests over HTTP, against the uvicorn process: create, list, get, delete, the
signed report link (byte-exact, Range, 403/404/410), validation 400s, isolation between accounts."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from tests.api.conftest import auth
from tests.test_reports import DAY, EXPECTED, add_call

from cdrflow.reports import build

pytestmark = pytest.mark.integration

PATH = "/reporting/cdr_requests"
SEED_SAMPLE = {  # the seed's own request sample: "string" is no date, so it is refused
    "start_time": "string",
    "end_time": "string",
    "call_types": [1],
    "record_types": [1],
    "connections": ["string"],
    "report_name": "string",
    "source": "string",
    "filters": ["string"],
}


@pytest.fixture
def calls(api_engine):
    with api_engine.begin() as conn:
        add_call(conn, "c2", "2026-11-01T11:00:00.5+00:00", caller_number="+cmd")
        add_call(conn, "c1", "2026-11-01T10:00:00+00:00", other_leg_call_id="b1",
                 answer_time="2026-11-01T10:00:05Z", end_time="2026-11-01T10:01:05Z",
                 caller_number="+13125550001", caller_e164="+13125550001", callee_number="0800 555",
                 caller_name='=HYPERLINK("http://x")', callee_name="Smith, Ann", connection="conn-1",
                 tags=["vip", "gold"], hangup_cause="NORMAL_CLEARING", hangup_code=16, disposition="ANSWERED",
                 user_id="u1", call_type="L", call_sub_type="LO")  # fmt: skip
        add_call(conn, "elsewhere", "2026-11-01T10:30:00+00:00", account_id="B2")
    return api_engine


def _build(engine, tmp_path: Path) -> list[build.Outcome]:
    return build.build_pending(engine, "test-builder", base_url=(tmp_path / "artifacts").as_uri())


def _get(api: httpx.Client, ident: str, headers: dict, prefix: str = "") -> dict:
    response = api.get(f"{prefix}{PATH}/{ident}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    [item] = response.json()["errors"]  # the Telnyx envelope
    assert item["code"] == str(status)
    return item


def test_create_build_download_and_delete(api: httpx.Client, make_token, calls, tmp_path):
    headers = auth(make_token("A1"))
    created = api.post(PATH, json={**DAY, "report_name": "november"}, headers=headers)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["status"] == 1 and body["report_url"] is None
    assert body["start_time"] == "2026-11-01T00:00:00+00:00" and body["end_time"] == "2026-11-02T00:00:00+00:00"
    assert (body["call_types"], body["record_types"], body["connections"], body["filters"]) == ([1], [1], [], [])
    assert body["report_name"] == "november" and body["created_at"] and body["updated_at"]
    ident = body["id"]

    [done] = _build(calls, tmp_path)
    assert done.request_id == ident and done.status == "complete"
    got = _get(api, ident, headers)
    assert got["status"] == 2 and got["report_url"].startswith(api.base_url.__str__().rstrip("/") + "/downloads/")

    link = got["report_url"]
    download = httpx.get(link)  # no credential: the link is the credential
    assert download.status_code == 200 and download.content.decode() == EXPECTED
    assert download.headers["content-length"] == str(len(EXPECTED))
    assert 'filename="november.csv"' in download.headers["content-disposition"]
    assert download.headers["content-type"].startswith("text/csv")
    part = httpx.get(link, headers={"Range": "bytes=0-10"})
    assert part.status_code == 206 and part.content == EXPECTED.encode()[:11]

    deleted = api.delete(f"{PATH}/{ident}", headers=headers)
    assert deleted.status_code == 200 and deleted.json() == {"success": True, "message": "CDR request deleted"}
    assert httpx.get(link).status_code == 404  # the link dies at once
    assert not Path(done.uri.removeprefix("file://")).exists()
    _error(api.get(f"{PATH}/{ident}", headers=headers), 404)
    _error(api.delete(f"{PATH}/{ident}", headers=headers), 404)


def test_the_v1_alias_and_gzip(api: httpx.Client, make_token, calls, tmp_path):
    headers = {"x-api-token": make_token("A1"), "x-api-user": "ops@example.com"}  # a Telnyx v1 client
    created = api.post("/v1" + PATH, json={**DAY, "gzip": True, "connections": [12]}, headers=headers)
    assert created.status_code == 200, created.text
    assert created.json()["gzip"] is True and created.json()["connections"] == ["12"]
    _build(calls, tmp_path)
    got = _get(api, created.json()["id"], headers, "/v1")
    download = httpx.get(got["report_url"])
    assert download.headers["content-type"] == "application/gzip"
    assert download.headers["content-disposition"].endswith('.csv.gz"')
    assert gzip.decompress(download.content).decode() == HEADER_ONLY  # connection 12 has no calls
    with calls.connect() as conn:
        stored = conn.execute(text("SELECT sha256 FROM report_requests")).scalar_one()
    assert hashlib.sha256(download.content).hexdigest() == stored


HEADER_ONLY = EXPECTED.splitlines(keepends=True)[0]


def test_an_expired_report_shows_status_4_and_its_link_answers_410(api: httpx.Client, make_token, calls, tmp_path):
    headers = auth(make_token("A1"))
    ident = api.post(PATH, json=DAY, headers=headers).json()["id"]
    _build(calls, tmp_path)
    link = _get(api, ident, headers)["report_url"]
    assert httpx.get(link).status_code == 200
    with calls.begin() as conn:
        conn.execute(text("UPDATE report_requests SET expires_at = now() - interval '1 minute'"))
    got = _get(api, ident, headers)
    assert got["status"] == 4 and got["report_url"] is None  # before housekeeping ran
    assert httpx.get(link).status_code == 410


def test_a_tampered_link_is_refused(api: httpx.Client, make_token, calls, tmp_path):
    headers = auth(make_token("A1"))
    ident = api.post(PATH, json=DAY, headers=headers).json()["id"]
    _build(calls, tmp_path)
    link = _get(api, ident, headers)["report_url"]
    base, _, token = link.rpartition("/")
    payload, _, signature = token.partition(".")
    for forged in (
        payload + "." + signature[::-1],
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,
    ):
        assert httpx.get(f"{base}/{forged}").status_code == 403
    assert httpx.get(link).status_code == 200


def test_a_failed_request_says_why(api: httpx.Client, make_token, calls, tmp_path):
    headers = auth(make_token("A1"))
    ident = api.post(PATH, json=DAY, headers=headers).json()["id"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    build.build_pending(calls, "w", base_url=blocker.as_uri())
    got = _get(api, ident, headers)
    assert got["status"] == 3 and got["report_url"] is None and "artifact store" in got["failure_reason"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (SEED_SAMPLE, "/start_time"),
        ({**DAY, "filters": [{"filter_type": "or", "cli": "1312"}]}, "/filters/0/filter_type"),
        (
            {
                **DAY,
                "filters": [
                    {"filter_type": "and", "cli": "1"},
                    {"filter_type": "or", "cli": "2"},
                    {"filter_type": "and", "cli": "3"},
                ],
            },
            "/filters/2/filter_type",
        ),  # fmt: skip
        ({**DAY, "filters": [{"filter_type": "and", "cld": "1", "cld_filter": "regex"}]}, "/filters/0/cld_filter"),
        ({**DAY, "call_types": [0]}, "/call_types/0"),
        ({**DAY, "record_types": [5]}, "/record_types/0"),
        ({**DAY, "source": "sms"}, "/source"),
        ({**DAY, "call_types": ["inbound"]}, "/call_types/0"),
        ({"end_time": "2026-11-02T00:00:00Z"}, "/start_time"),
        ({**DAY, "end_time": "2999-01-01T00:00:00Z"}, "/end_time"),
        ({**DAY, "report_name": "x" * 10_000}, "/report_name"),
        ({**DAY, "report_name": "nul\u0000"}, "/report_name"),
        ({**DAY, "filters": [{"filter_type": "and", "cli": "9" * 1000}]}, "/filters/0/cli"),
        ({**DAY, "connections": ["c" * 5000]}, "/connections/0"),
    ],
)
def test_invalid_requests_answer_400_in_the_telnyx_envelope(api: httpx.Client, make_token, body, pointer):
    item = _error(api.post(PATH, json=body, headers=auth(make_token("A1"))), 400)
    assert item["title"] == "Bad Request" and item["detail"]
    assert item["source"]["pointer"].endswith(pointer.lstrip("/")), item


@pytest.mark.parametrize(
    "query", ["per_page=1001", "per_page=0", "page=0", "page=x", "per_page=1e3", "page=99999999999"]
)
def test_bad_paging_answers_400(api: httpx.Client, make_token, query):
    _error(api.get(f"{PATH}?{query}", headers=auth(make_token("A1"))), 400)


def test_no_credential_answers_401_and_a_bad_body_400(api: httpx.Client, make_token):
    _error(api.get(PATH), 401)
    _error(api.post(PATH, json=DAY), 401)
    _error(
        api.post(PATH, content=b"{not json", headers={**auth(make_token("A1")), "content-type": "application/json"}),
        400,
    )
    _error(api.post(PATH, json=[DAY], headers=auth(make_token("A1"))), 400)


def test_paging_newest_first(api: httpx.Client, make_token):
    headers = auth(make_token("A1"))
    made = [api.post(PATH, json={**DAY, "report_name": f"r{i}"}, headers=headers).json()["id"] for i in range(3)]
    first = api.get(PATH, params={"per_page": 2}, headers=headers).json()
    second = api.get(PATH, params={"per_page": 2, "page": 2}, headers=headers).json()
    assert [r["id"] for r in first + second] == made[::-1]
    assert api.get(PATH, params={"per_page": 2, "page": 3}, headers=headers).json() == []
    assert [r["id"] for r in api.get(PATH, headers=headers).json()] == made[::-1]


def test_accounts_see_only_their_own_requests_and_operators_all(api: httpx.Client, make_token, calls, tmp_path):
    a, b, operator = auth(make_token("A1")), auth(make_token("B2")), auth(make_token(None))
    mine = api.post(PATH, json=DAY, headers=a).json()["id"]
    everyone = api.post(PATH, json=DAY, headers=operator).json()["id"]
    _error(api.get(f"{PATH}/{mine}", headers=b), 404)
    _error(api.delete(f"{PATH}/{mine}", headers=b), 404)
    assert api.get(PATH, headers=b).json() == []
    assert [r["id"] for r in api.get(PATH, headers=a).json()] == [mine]  # not the operator's
    assert {r["id"] for r in api.get(PATH, headers=operator).json()} == {mine, everyone}
    assert api.get(f"{PATH}/{mine}", headers=operator).status_code == 200
    outcomes = {o.request_id: o for o in _build(calls, tmp_path)}
    assert outcomes[mine].rows == 2 and outcomes[everyone].rows == 3  # the operator's report: every account


def test_metacharacters_are_stored_and_echoed_harmlessly(api: httpx.Client, make_token, calls, tmp_path):
    headers = auth(make_token("A1"))
    nasty = "'; DROP TABLE calls; --"
    body = {
        **DAY,
        "report_name": nasty + ' "quoted" \\ % _ ünïcode',
        "connections": [nasty, "$$ ) TO PROGRAM 'x' --"],
        "filters": [
            {"filter_type": "and", "cli": "%' OR '1'='1", "cli_filter": "contains"},
            {"filter_type": "or", "tags_list": [nasty, "\\\\"]},
        ],
    }
    created = api.post(PATH, json=body, headers=headers)
    assert created.status_code == 200, created.text
    echoed = created.json()
    assert echoed["report_name"] == body["report_name"] and echoed["connections"] == body["connections"]
    assert echoed["filters"][0]["cli"] == "%' OR '1'='1"
    [done] = _build(calls, tmp_path)
    assert done.status == "complete" and done.rows == 0  # nothing matches; nothing broke
    link = api.get(f"{PATH}/{echoed['id']}", headers=headers).json()["report_url"]
    download = httpx.get(link)
    assert download.status_code == 200 and download.content.decode() == HEADER_ONLY
    disposition = download.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="DROP_TABLE_calls[A-Za-z0-9._-]*code\.csv"', disposition), disposition
    with calls.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 3
    for ident in ("1 OR 1=1", "' OR ''='", "x" * 3000, "00000000-0000-0000-0000-000000000000"):
        _error(api.get(f"{PATH}/{ident}", headers=headers), 404)
