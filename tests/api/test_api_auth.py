"""Credentials of the seed APIs over HTTP: every place a seed's client puts a token, Kazoo's
api_auth exchange, revocation, and each API's own error envelope (400, never 422)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import text
from tests.api.conftest import auth

from cdrflow.warehouse import credentials

pytestmark = pytest.mark.integration


def test_every_seed_style_of_token_is_accepted(api: httpx.Client, make_token):
    token = make_token("acct1")
    for kwargs in (
        {"headers": {"X-Auth-Token": token}},
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"headers": {"x-api-token": token, "x-api-user": "someone@example.com"}},
        {"params": {"auth_token": token}},
    ):
        response = api.get("/whoami", **kwargs)
        assert response.status_code == 200, (kwargs, response.text)
        assert response.json()["account_id"] == "acct1"


def test_missing_wrong_and_revoked_tokens_answer_401(api: httpx.Client, api_engine, make_token):
    assert api.get("/whoami").status_code == 401
    assert api.get("/whoami", headers=auth("not-a-token")).status_code == 401
    token = make_token("acct1")
    assert api.get("/whoami", headers=auth(token)).status_code == 200
    with api_engine.begin() as conn:
        cred = credentials.listing(conn, account_id="acct1")[0]
        credentials.revoke(conn, cred.id)
    response = api.get("/whoami", headers=auth(token))
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "invalid credentials"}}


def test_operator_token_has_the_operator_role(api: httpx.Client, make_token):
    body = api.get("/whoami", headers=auth(make_token(None))).json()
    assert body["role"] == "operator" and body["account_id"] is None


def test_only_hashes_are_stored(api_engine, make_token):
    token = make_token("acct1")
    with api_engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_hash FROM api_credentials")).scalar_one()
    assert token not in stored and stored == credentials.digest(token)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_kazoo_api_auth_exchanges_an_api_key_for_a_token(api: httpx.Client, make_token, version):
    key = make_token("acct1", kind="api_key")
    response = api.put(f"/{version}/api_auth", json={"data": {"api_key": key}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "success" and body["data"]["account_id"] == "acct1"
    assert api.get("/whoami", headers=auth(body["auth_token"])).json()["account_id"] == "acct1"
    # the key itself is not a token for other routes
    assert api.get("/whoami", headers=auth(key)).status_code == 401


def test_kazoo_api_auth_refusals_keep_the_kazoo_envelope(api: httpx.Client):
    response = api.put("/v2/api_auth", json={"data": {"api_key": "wrong"}})
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error" and body["error"] == "401" and body["message"] == "invalid_credentials"
    assert response.headers["X-Request-Id"] == body["request_id"]
    response = api.put("/v2/api_auth", json={"data": {}})
    assert response.status_code == 400 and response.json()["status"] == "error"


def test_expired_session_is_refused(api: httpx.Client, api_engine):
    past = datetime.now(UTC) - timedelta(minutes=1)
    with api_engine.begin() as conn:
        _, token = credentials.create(conn, "session", "acct1", expires_at=past)
    assert api.get("/whoami", headers=auth(token)).status_code == 401


def test_unknown_paths_answer_in_their_api_envelope(api: httpx.Client):
    kazoo = api.get("/v2/nothing-here")
    assert kazoo.status_code == 404 and kazoo.json()["status"] == "error" and kazoo.json()["error"] == "404"
    telnyx = api.get("/reporting/nothing-here")
    assert telnyx.status_code == 404 and telnyx.json()["errors"][0]["code"] == "404"
    other = api.get("/nothing-here")
    assert other.status_code == 404 and other.json()["error"]["code"] == 404


def test_openapi_is_served(api: httpx.Client):
    spec = api.get("/openapi.json").json()
    assert "/v1/api_auth" in spec["paths"] and "/v2/api_auth" in spec["paths"]


def test_feed_password_is_hashed_with_scrypt_and_checked(api_engine):
    with api_engine.begin() as conn:
        credentials.create(conn, "feed_password", "1001", secret="b1ll1ngf33d")
        stored = conn.execute(text("SELECT secret_hash FROM api_credentials")).scalar_one()
        assert stored.startswith("scrypt$") and "b1ll1ngf33d" not in stored
        assert credentials.principal_for_feed_login(conn, "1001", "b1ll1ngf33d").account_id == "1001"
        assert credentials.principal_for_feed_login(conn, "1001", "wrong") is None
        assert credentials.principal_for_feed_login(conn, "1002", "b1ll1ngf33d") is None


def test_openapi_says_400_where_fastapi_would_say_422(api: httpx.Client):
    spec = api.get("/openapi.json").json()
    answers = [code for operations in spec["paths"].values() for op in operations.values() for code in op["responses"]]
    assert "422" not in answers
    assert "400" in spec["paths"]["/v1/api_auth"]["put"]["responses"]
