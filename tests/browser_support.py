"""A real Airflow for the browser tests: ``airflow api-server`` (with the cdrflow plugin),
``dag-processor`` and ``scheduler`` (LocalExecutor) on a metadata database of their own, a
SimpleAuthManager user with a known password, the test's warehouse, and the Airflow REST API
calls the tests make to read runs and task logs.

Used by ``tests/test_ui_browser.py`` and ``tests/test_forms_browser.py``: the carrier file, the
extra environment and the log folder are arguments.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.servers.dovecot import free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("CDRFLOW_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
USER = "operator"
COMPONENTS = ("api-server", "dag-processor", "scheduler")


def chromium_path() -> Path:
    if not CHROMIUM.exists():
        # a failure, never a skip, as for the other real servers (make test installs it)
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-services.sh as root (apt-get install chromium)")
    return CHROMIUM


@dataclass
class Airflow:
    base: str  # http://127.0.0.1:PORT
    logs: Path
    processes: dict[str, subprocess.Popen]
    password: str
    home: Path
    _token: tuple[float, str] | None = field(default=None, repr=False)

    def tails(self, lines: int = 25) -> str:
        out = []
        for name in self.processes:
            text = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {name}\n" + "\n".join(t[:300] for t in text))
        return "\n".join(out)

    def alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"airflow {name} exited ({process.returncode}):\n{self.tails()}"

    def token(self) -> str:
        if self._token and time.monotonic() - self._token[0] < 600:
            return self._token[1]
        r = httpx.post(f"{self.base}/auth/token", json={"username": USER, "password": self.password}, timeout=30)
        r.raise_for_status()
        self._token = (time.monotonic(), r.json()["access_token"])
        return self._token[1]

    def api(self, path: str, method: str = "GET", **kwargs: Any) -> Any:
        """Airflow's REST API (``/api/v2`` + ``path``) as the operator; the JSON answer."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        r = httpx.request(method, f"{self.base}/api/v2{path}", headers=headers, timeout=30, **kwargs)
        assert r.is_success, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.api(f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> dict:
        """The run once it has ended (success or failed)."""

        def ended() -> dict | None:
            run = self.run(dag_id, run_id)
            return run if run["state"] in ("success", "failed") else None

        return wait(f"{dag_id} run {run_id} to end", ended, timeout, self, every=2)

    def idle(self, dag_id: str, timeout: float = 240) -> None:
        """Wait until no run of ``dag_id`` is queued or running (a scheduled run started by
        unpausing it would otherwise race with the test's next run)."""

        def none_active() -> bool:
            found = self.api(f"/dags/{dag_id}/dagRuns", params={"state": ["queued", "running"]})
            return found["total_entries"] == 0

        wait(f"{dag_id} idle", none_active, timeout, self, every=2)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        found = self.api(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: t["state"] for t in found}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> list[str]:
        """The task's log as its lines' events, read through the REST API (what the UI shows)."""
        from urllib.parse import quote

        found = self.api(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}")
        content = found["content"]
        if isinstance(content, str):
            return content.splitlines()
        return [str(line.get("event", "")) if isinstance(line, dict) else str(line) for line in content]


def wait(what: str, check: Callable[[], Any], timeout: float, airflow: Airflow | None = None, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        if airflow:
            airflow.alive()
        try:
            if found := check():
                return found
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s\n{airflow.tails() if airflow else ''}")
        time.sleep(every)


@contextmanager
def started_airflow(
    home: Path, logs: Path, warehouse_url: str, carriers: list[dict], extra_env: dict[str, str] | None = None
) -> Iterator[Airflow]:
    """Airflow (API server, DAG processor, scheduler) in ``home``, its process and task logs in
    ``logs``, the carrier file written from ``carriers``; ends it afterwards."""
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    password = "forms-test-" + secrets.token_hex(6)
    (home / "passwords.json").write_text(json.dumps({USER: password}))
    (home / "carriers.yaml").write_text(yaml.safe_dump({"carriers": carriers}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "CDRFLOW_DATABASE_URL")}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs / "tasks"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW_CONN_CDRFLOW_WAREHOUSE": warehouse_url,
        "CDRFLOW_STATE_DIR": str(home / "state"),
        "CDRFLOW_CARRIERS_FILE": str(home / "carriers.yaml"),
        "CDRFLOW_LINK_SECRET": secrets.token_urlsafe(32),
    }
    env |= extra_env or {}
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stderr[-4000:]
    commands = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        "dag-processor": ["dag-processor"],
        "scheduler": ["scheduler"],
    }
    processes: dict[str, subprocess.Popen] = {}
    for name in COMPONENTS:
        with (logs / f"{name}.log").open("wb") as out:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *commands[name]], stdout=out, stderr=subprocess.STDOUT, env=env
            )
    started = Airflow(f"http://127.0.0.1:{port}", logs, processes, password, home)
    try:
        wait(
            "the API server", lambda: httpx.get(started.base + "/cdr/openapi.json", timeout=2).is_success, 120, started
        )
        headers = {"Authorization": f"Bearer {started.token()}"}
        wait(
            "cdrflow_process parsed by the DAG processor",
            lambda: httpx.get(f"{started.base}/api/v2/dags/cdrflow_process", headers=headers, timeout=5).is_success,
            120,
            started,
        )
        yield started
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
