"""Throwaway databases for the tests and the benchmarks: created on a server, dropped after.

One way to find a server (:func:`server_url`) and one way to make a database on it
(:func:`create`), so that ``tests/conftest.py`` and ``bench/common.py`` do the same thing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cdrflow.warehouse import embedded
from cdrflow.warehouse.db import normalise_url

LOCAL_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def reachable(url: str, timeout: int = 3) -> bool:
    """Whether a connection to ``url`` opens within ``timeout`` seconds."""
    engine = create_engine(normalise_url(url), connect_args={"connect_timeout": timeout})
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def server_url(explicit: str | None, state: Path) -> tuple[str, Callable[[], None]]:
    """A database on a server where we may CREATE DATABASE, and a function to call when done
    with it: ``explicit`` when given (used as is, reachable or not), else the server on
    127.0.0.1:5432 when it answers, else an embedded server under ``state`` (stopped by the
    returned function)."""
    if explicit:
        return normalise_url(explicit), lambda: None
    if reachable(LOCAL_SERVER):
        return LOCAL_SERVER, lambda: None
    url = make_url(embedded.ensure_server(state)).set(database="postgres")

    def stop() -> None:
        embedded.stop_server(state)

    return url.render_as_string(hide_password=False), stop


def create(server: str, prefix: str = "cdrflow_scratch") -> tuple[str, Callable[[], None]]:
    """A new empty database on ``server``'s PostgreSQL; returns its URL and a function that
    drops it (even with sessions still open)."""
    admin_url = normalise_url(server)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')  # a generated name, not user text
    finally:
        admin.dispose()

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop
