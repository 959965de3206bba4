"""The warehouse connection: which PostgreSQL to use, and an SQLAlchemy engine for it.

Order of precedence (the first that is set wins):
1. ``CDRFLOW_DATABASE_URL``;
2. the Airflow connection ``cdrflow_warehouse``, read from ``AIRFLOW_CONN_CDRFLOW_WAREHOUSE``
   (URI or JSON form) or, inside a running Airflow task, from Airflow's secrets backends;
3. the embedded PostgreSQL server under the state directory (started on demand).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from cdrflow.config import settings
from cdrflow.config.errors import ConfigurationError
from cdrflow.warehouse import embedded

log = logging.getLogger(__name__)

DRIVER = "postgresql+psycopg2"  # the loader uses psycopg2's copy_expert on raw connections


def normalise_url(url: str) -> str:
    """Accept libpq/Airflow spellings (``postgres://``, ``postgresql://``) and pin the driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ConfigurationError(f"not a database URL: {url!r} ({exc})") from None
    if parsed.drivername not in ("postgres", "postgresql", DRIVER):
        raise ConfigurationError(f"the warehouse must be PostgreSQL, got {parsed.drivername!r}")
    return parsed.set(drivername=DRIVER).render_as_string(hide_password=False)


def _url_from_airflow_conn(value: str) -> str:
    value = value.strip()
    if not value.startswith("{"):
        return normalise_url(value)
    conn = json.loads(value)
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra else {}
    url = URL.create(
        DRIVER,
        username=conn.get("login"),
        password=conn.get("password"),
        host=conn.get("host"),
        port=conn.get("port"),
        database=conn.get("schema") or conn.get("database"),
        query={k: str(v) for k, v in extra.items() if k in ("sslmode", "host", "options")},
    )
    return url.render_as_string(hide_password=False)


def _url_from_airflow_task() -> str | None:
    """Inside an Airflow task, ask the Task SDK (secrets backends, the API server)."""
    if "airflow.sdk" not in sys.modules:
        return None  # not running under Airflow: do not pay for importing it
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(settings.WAREHOUSE_CONN_ID)
    except Exception:  # no such connection: fall through to the embedded default
        return None
    return normalise_url(conn.get_uri())


def resolve_url() -> str:
    """The warehouse URL by the precedence above; may start the embedded server."""
    if url := os.environ.get("CDRFLOW_DATABASE_URL"):
        return normalise_url(url)
    if value := os.environ.get("AIRFLOW_CONN_" + settings.WAREHOUSE_CONN_ID.upper()):
        return _url_from_airflow_conn(value)
    if url := _url_from_airflow_task():
        return url
    return embedded.ensure_server(settings.state_dir())


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def get_engine(url: str | None = None) -> Engine:
    """A shared engine for ``url`` (default: the resolved warehouse)."""
    return _engine_for(normalise_url(url) if url else resolve_url())


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)
