"""The same application inside Airflow's own API server: ``airflow api-server`` loads
``plugins/cdrflow_api.py`` and serves the seed APIs under ``/cdr`` beside Airflow's UI and REST API.

Checked once here (the routes themselves are tested against uvicorn): the plugin mounts, the
seeds' credentials work (Airflow does not take ``Authorization: Bearer`` for its own JWT on a
mounted app), errors keep their envelopes, and no secret from a query string reaches the log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.airflow_runs import airflow_db
from tests.api.conftest import auth
from tests.servers.dovecot import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def airflow_api(airflow_db, warehouse_url: str, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path_factory.mktemp("airflow-api") / "api-server.log"
    env = {
        **os.environ,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW_CONN_CDRFLOW_WAREHOUSE": warehouse_url,
    }
    env.pop("CDRFLOW_DATABASE_URL", None)
    command = [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"airflow api-server exited:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"airflow api-server did not start:\n{log.read_text()[-4000:]}"
            try:
                if httpx.get(base + "/cdr/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield base, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_plugin_serves_the_seed_apis_inside_airflow(airflow_api, make_token):
    base, log = airflow_api
    token = make_token("acct1")
    with httpx.Client(base_url=base + "/cdr", timeout=30) as api:
        assert api.get("/whoami", headers={"Authorization": f"Bearer {token}"}).json()["account_id"] == "acct1"
        assert api.get("/whoami", headers=auth(token)).json()["account_id"] == "acct1"
        refused = api.get("/whoami", headers={"Authorization": "Bearer not-ours"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == 401
        kazoo = api.get("/v2/accounts/acct1/nothing", headers=auth(token))
        assert kazoo.status_code == 404 and kazoo.json()["status"] == "error"
        assert api.get("/whoami", params={"auth_token": token}).status_code == 200
        spec = api.get("/openapi.json").json()
        assert spec["info"]["title"] == "cdrflow seed APIs"
    # Airflow's own API is still there, and still asks for its own login
    assert httpx.get(base + "/api/v2/dags", timeout=30).status_code in (401, 403)
    time.sleep(0.5)  # the access log line is written after the response
    text = log.read_text(errors="replace")
    assert "/cdr/whoami" in text, "the access log should show the requests"
    assert token not in text, "a token from the query string reached Airflow's log"
