"""The warehouse connection: which PostgreSQL to use, and an SQLAlchemy engine for it.

Order of precedence (the first that is set wins):

1. ``CDRFLOW_DATABASE_URL``: a PostgreSQL URL (SQLAlchemy or libpq spelling), or the word
   ``embedded``: the embedded PostgreSQL server under the state directory (started on demand).
   Choosing ``embedded`` is remembered in ``<state>/warehouse``, see 4.
2. The Airflow connection ``cdrflow_warehouse`` in ``AIRFLOW_CONN_CDRFLOW_WAREHOUSE`` (URI or
   JSON form).
3. Inside a running Airflow task, the connection ``cdrflow_warehouse`` from Airflow's secrets
   backends (the API server, Vault, ...). Only "the connection is not defined" moves on to 4;
   any other failure (a backend that denies access) is an error: a worker never quietly
   writes somewhere else.
4. ``<state>/warehouse`` saying ``embedded``: the embedded server was chosen explicitly before
   (``make demo``, ``make airflow``), so ``cdrflow files`` and ``cdrflow file 3`` find the demo's
   warehouse without another setting. ``make clean-state`` forgets it.
5. Nothing: a :class:`ConfigurationError` saying what to set. No database is created unasked.

Every URL, wherever it comes from (these settings, a benchmark's ``--database-url``, the
tests' server), goes through :func:`normalise_url`, which pins the psycopg2 driver the loader
needs (SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from cdrflow.config import deployment, settings
from cdrflow.config.errors import ConfigurationError, one_line
from cdrflow.warehouse import embedded

log = logging.getLogger(__name__)

DRIVER = "postgresql+psycopg2"  # the loader uses psycopg2's copy_expert on raw connections
EMBEDDED = "embedded"  # CDRFLOW_DATABASE_URL=embedded: the embedded server under the state directory
CHOICE_FILE = "warehouse"  # <state>/warehouse: "embedded" once that was chosen explicitly
NOTHING_CONFIGURED = (
    "no warehouse configured: set CDRFLOW_DATABASE_URL to a PostgreSQL URL (or to 'embedded' for a "
    "local embedded server under the state directory), or define the Airflow connection cdrflow_warehouse"
)

_last_url: str | None = None  # the URL of the last engine handed out, for error messages


def normalise_url(url: str) -> str:
    """Accept libpq/Airflow spellings (``postgres://``, ``postgresql://``) and pin the driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ConfigurationError(f"not a database URL ({one_line(exc)})") from None  # it may hold a password
    if parsed.drivername not in ("postgres", "postgresql", DRIVER) and not parsed.drivername.startswith("postgresql+"):
        raise ConfigurationError(f"the warehouse must be PostgreSQL, got {parsed.drivername!r}")
    return parsed.set(drivername=DRIVER).render_as_string(hide_password=False)


def _url_from_airflow_conn(value: str) -> str:
    value = value.strip()
    if not value.startswith("{"):
        return normalise_url(value)
    try:
        conn = json.loads(value)
        extra = conn.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
    except (ValueError, AttributeError) as exc:
        raise ConfigurationError(f"AIRFLOW_CONN_CDRFLOW_WAREHOUSE is not a connection URI or JSON: {exc}") from None
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
    """Inside an Airflow task, ask the Task SDK (secrets backends, the API server). None only when
    the connection is not defined anywhere; any other failure is a ConfigurationError."""
    if "airflow.sdk" not in sys.modules:
        return None  # not running under Airflow: do not pay for importing it
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(settings.WAREHOUSE_CONN_ID)
    except AirflowNotFoundException:
        return None
    except Exception as exc:
        raise ConfigurationError(
            f"cannot read the Airflow connection {settings.WAREHOUSE_CONN_ID}: {one_line(exc)}"
        ) from exc
    return normalise_url(conn.get_uri())


def _choice_file(state: Path) -> Path:
    return state / CHOICE_FILE


def _embedded(state: Path) -> str:
    """The embedded server's URL (started if needed); the choice is remembered in the state.
    Never under the CeleryExecutor: each worker would start a warehouse of its own."""
    if deployment.celery_executor():
        raise ConfigurationError(
            "the embedded warehouse is refused under the CeleryExecutor: every worker must reach one "
            "warehouse; set AIRFLOW_CONN_CDRFLOW_WAREHOUSE (or CDRFLOW_DATABASE_URL) to a PostgreSQL server"
        )
    url = embedded.ensure_server(state)
    choice = _choice_file(state)
    if not choice.exists() or choice.read_text().strip() != EMBEDDED:
        choice.write_text(EMBEDDED + "\n")
    return url


def resolve_url() -> str:
    """The warehouse URL by the precedence above; may start the embedded server when it was chosen."""
    if url := os.environ.get("CDRFLOW_DATABASE_URL", "").strip():
        return _embedded(settings.state_dir()) if url == EMBEDDED else normalise_url(url)
    if value := os.environ.get("AIRFLOW_CONN_" + settings.WAREHOUSE_CONN_ID.upper()):
        return _url_from_airflow_conn(value)
    if from_task := _url_from_airflow_task():
        return from_task
    state = settings.state_dir()
    choice = _choice_file(state)
    if choice.is_file() and choice.read_text().strip() == EMBEDDED:
        return _embedded(state)
    raise ConfigurationError(NOTHING_CONFIGURED)


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def get_engine(url: str | None = None) -> Engine:
    """A shared engine for ``url`` (default: the resolved warehouse)."""
    global _last_url
    _last_url = normalise_url(url) if url else resolve_url()
    return _engine_for(_last_url)


def last_url() -> str | None:
    """The URL of the engine :func:`get_engine` handed out last (for error messages)."""
    return _last_url


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)
