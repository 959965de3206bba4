"""Numbered SQL migrations from ``sql/``, applied in order, each once, each in a transaction.

A file ``sql/NNN_name.sql`` is migration NNN. Applied migrations are recorded in
``cdrflow_migrations`` with a checksum of their text, so an edited migration is refused
instead of silently diverging. A session-level advisory lock serialises concurrent runs:
the second process waits, then finds everything applied and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from cdrflow.config.errors import MigrationError

log = logging.getLogger(__name__)

LOCK_KEY = 0x6364_7266_6C6F_77  # "cdrflow": one advisory lock for all migration runs
_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS cdrflow_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   char(64) NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(sql_dir: Path) -> list[Migration]:
    """The migrations in ``sql_dir``, ordered; refuses gaps in naming and repeated numbers."""
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations numbered {version}: {found[version].path.name} and {path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def applied(engine: Engine) -> dict[int, str]:
    """Version -> checksum of every applied migration (empty on a new database)."""
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('cdrflow_migrations') IS NOT NULL")).scalar()
        if not exists:
            return {}
        rows = conn.execute(text("SELECT version, checksum FROM cdrflow_migrations"))
        return {r.version: r.checksum for r in rows}


def upgrade(engine: Engine, sql_dir: Path) -> list[Migration]:
    """Apply every pending migration; return the ones applied by this call."""
    migrations = discover(sql_dir)
    done: list[Migration] = []
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        conn.commit()
        try:
            conn.execute(text(_CREATE_TABLE))
            conn.commit()
            recorded = {
                r.version: r.checksum for r in conn.execute(text("SELECT version, checksum FROM cdrflow_migrations"))
            }
            conn.commit()
            for migration in migrations:
                if migration.version in recorded:
                    if recorded[migration.version].strip() != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.path.name} was edited after it was applied; "
                            "add a new migration instead of changing an applied one"
                        )
                    continue
                log.info("applying migration %s", migration.path.name)
                try:
                    with conn.begin():
                        # a migration is a script of many statements: send it as is (no binds)
                        conn.exec_driver_sql(migration.sql, execution_options={"no_parameters": True})
                        conn.execute(
                            text("INSERT INTO cdrflow_migrations (version, name, checksum) VALUES (:v, :n, :c)"),
                            {"v": migration.version, "n": migration.name, "c": migration.checksum},
                        )
                except Exception as exc:
                    raise MigrationError(f"migration {migration.path.name} failed and was rolled back: {exc}") from exc
                done.append(migration)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.commit()
    return done
