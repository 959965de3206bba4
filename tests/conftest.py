"""Shared fixtures: a real PostgreSQL server and a throwaway database per test session.

The server is ``CDRFLOW_TEST_PG_URL`` when set, else the one on 127.0.0.1:5432 when it
answers, else an embedded PostgreSQL started for the session. Tests never touch the
developer's own warehouse or state directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Before anything imports Airflow or cdrflow settings: private state and Airflow home.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="cdrflow-tests-"))
os.environ["CDRFLOW_STATE_DIR"] = str(_SESSION_DIR / "state")
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ.pop("CDRFLOW_DATABASE_URL", None)
os.environ.pop("AIRFLOW_CONN_CDRFLOW_WAREHOUSE", None)

from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from cdrflow.config import settings  # noqa: E402
from cdrflow.intake.rawstore import RawStore  # noqa: E402
from cdrflow.warehouse import carriers, migrations  # noqa: E402
from cdrflow.warehouse.db import normalise_url  # noqa: E402

LOCAL_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
REPO = Path(__file__).resolve().parents[1]


def _reachable(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a database on a real server where we may CREATE DATABASE."""
    if url := os.environ.get("CDRFLOW_TEST_PG_URL"):
        yield normalise_url(url)
        return
    if _reachable(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    from cdrflow.warehouse import embedded

    state = _SESSION_DIR / "embedded"
    state.mkdir()
    url = embedded.ensure_server(state)
    yield make_url(url).set(database="postgres").render_as_string(hide_password=False)
    embedded.stop_server(state)


@pytest.fixture(scope="session")
def new_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory: a new empty database per call; all dropped at the end of the session."""
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"cdrflow_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')  # generated name, not user text
        created.append(name)
        return make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def warehouse_url(new_database: Callable[[], str]) -> str:
    """A migrated warehouse shared by the session (tables are emptied after each test)."""
    url = new_database()
    engine = create_engine(url)
    migrations.upgrade(engine, settings.SQL_DIR)
    engine.dispose()
    return url


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    eng = create_engine(warehouse_url)
    yield eng
    with eng.begin() as conn:
        conn.execute(text("TRUNCATE calls, rejected_rows, cdr_files, carriers RESTART IDENTITY CASCADE"))
    eng.dispose()


@pytest.fixture
def store(tmp_path: Path) -> RawStore:
    return RawStore((tmp_path / "raw").as_uri())


@pytest.fixture
def carrier(engine: Engine) -> str:
    with engine.begin() as conn:
        carriers.upsert(conn, carriers.Carrier(code="acme", name="ACME", file_type="asterisk_csv"))
    return "acme"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed ``cdrflow`` command as a user would."""
    full_env = {**os.environ, **(env or {})}
    exe = shutil.which("cdrflow", path=str(Path(sys.executable).parent)) or "cdrflow"
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
