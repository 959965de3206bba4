"""What the benchmarks share: a throwaway warehouse database and peak-memory measurement."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from cdrflow.config import settings
from cdrflow.warehouse import carriers, migrations

LOCAL_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def scratch_database(url: str | None = None) -> tuple[str, Callable[[], None]]:
    """A new empty database on ``url``'s server (default: 127.0.0.1:5432, else the embedded
    server) and a function that drops it."""
    admin = url or LOCAL_SERVER
    try:
        create_engine(admin, connect_args={"connect_timeout": 3}).connect().close()
    except Exception:
        from cdrflow.warehouse import embedded

        admin = make_url(embedded.ensure_server(settings.state_dir())).set(database="postgres")
        admin = admin.render_as_string(hide_password=False)
    name = f"cdrflow_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')  # generated name

    def drop() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()

    return make_url(admin).set(database=name).render_as_string(hide_password=False), drop


def warehouse(url: str, carrier: carriers.Carrier):
    """Migrate ``url`` and add ``carrier``; returns an engine."""
    engine = create_engine(url)
    migrations.upgrade(engine, settings.SQL_DIR)
    with engine.begin() as conn:
        carriers.upsert(conn, carrier)
    return engine


PEAK_RSS = """
def peak_rss_mib():
    # VmHWM is the peak of this process's own memory. ru_maxrss is not: Linux keeps it across
    # fork and exec, so a child of a big parent reports the parent's size.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python process; it prints one JSON line last. Adds the child's
    peak RSS in MiB as ``peak_rss_mib``."""
    wrapper = code + PEAK_RSS + "\nimport json as _j\nprint(_j.dumps({**RESULT, 'peak_rss_mib': peak_rss_mib()}))\n"
    out = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])
