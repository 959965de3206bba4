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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Before anything imports Airflow or cdrflow settings: private state and Airflow home.
# Test modules import this file as ``conftest`` as well as pytest's ``tests.conftest``: the second
# import must not move AIRFLOW_HOME to a new folder under an Airflow already configured (its
# metadata database would then be migrated in one folder and read in another).
_SESSION_DIR = Path(os.environ.get("CDRFLOW_TESTS_SESSION_DIR") or tempfile.mkdtemp(prefix="cdrflow-tests-"))
os.environ["CDRFLOW_TESTS_SESSION_DIR"] = str(_SESSION_DIR)
os.environ["CDRFLOW_STATE_DIR"] = str(_SESSION_DIR / "state")
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ.pop("CDRFLOW_DATABASE_URL", None)
os.environ.pop("AIRFLOW_CONN_CDRFLOW_WAREHOUSE", None)

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from cdrflow.config import settings  # noqa: E402
from cdrflow.intake.rawstore import RawStore  # noqa: E402
from cdrflow.warehouse import carriers, migrations, scratch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a database on a real server where we may CREATE DATABASE: ``CDRFLOW_TEST_PG_URL``,
    else 127.0.0.1:5432 when it answers, else an embedded server for the session."""
    url, done = scratch.server_url(os.environ.get("CDRFLOW_TEST_PG_URL"), _SESSION_DIR / "embedded")
    yield url
    done()


@pytest.fixture(scope="session")
def new_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory: a new empty database per call; all dropped at the end of the session."""
    drops: list[Callable[[], None]] = []

    def make() -> str:
        url, drop = scratch.create(pg_admin_url, prefix="cdrflow_test")
        drops.append(drop)
        return url

    yield make
    for drop in drops:
        drop()


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


def add_carrier(engine: Engine, code: str = "acme", file_type: str = "asterisk_csv", **settings) -> str:
    """Put carrier ``code`` in the warehouse (or update it); ``settings``: other Carrier fields."""
    with engine.begin() as conn:
        carriers.upsert(conn, carriers.Carrier(code=code, name=code.upper(), file_type=file_type, **settings))
    return code


@pytest.fixture
def carrier(engine: Engine) -> str:
    return add_carrier(engine)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Run the installed ``cdrflow`` command as a user would (``unset``: variables to remove)."""
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    exe = shutil.which("cdrflow", path=str(Path(sys.executable).parent)) or "cdrflow"
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
