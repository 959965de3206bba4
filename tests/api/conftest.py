"""Fixtures of the API tests: one real uvicorn process on the session's warehouse, an HTTP client
on it, and credentials made the way ``cdrflow accounts token`` makes them.

Routes are tested over HTTP against that process, not only through FastAPI's test client. Each
test's rows are removed afterwards (the ``engine`` fixture empties calls, files and carriers;
:func:`api_engine` also empties the API's own tables)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from tests.servers import api as api_servers

from cdrflow.warehouse import credentials

API_TABLES = ("api_credentials", "accounts", "report_requests")


@pytest.fixture(scope="session")
def api_server(warehouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[api_servers.ApiServer]:
    state = tmp_path_factory.mktemp("api-state")
    server = api_servers.start(warehouse_url, state, env={"CDRFLOW_ARTIFACT_STORE": (state / "artifacts").as_uri()})
    yield server
    server.stop()


@pytest.fixture
def api_engine(engine: Engine) -> Iterator[Engine]:
    yield engine
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(API_TABLES)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def api(api_server: api_servers.ApiServer, api_engine: Engine) -> Iterator[httpx.Client]:
    """A client of the running server; base URL ``http://127.0.0.1:PORT/cdr``."""
    with httpx.Client(base_url=api_server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def make_token(api_engine: Engine) -> Callable[..., str]:
    """``make_token("acct1")``: a new API token of that account; ``make_token(None)``: an operator's."""

    def make(account_id: str | None, kind: str = "token", secret: str | None = None) -> str:
        with api_engine.begin() as conn:
            return credentials.create(conn, kind, account_id, secret=secret)[1]

    return make


def auth(token: str) -> dict[str, str]:
    return {"X-Auth-Token": token}


@pytest.fixture
def api_state(api_server: api_servers.ApiServer) -> Path:
    return api_server.log_file.parent
