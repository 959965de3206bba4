"""The data dictionary (docs/data-dictionary.md) is kept true: every table, view, column and
function of a freshly migrated warehouse has a comment, and the committed file is exactly what
``cdrflow db dictionary`` prints for it."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests.conftest import run_cli

from cdrflow.config import settings
from cdrflow.warehouse import dictionary, migrations

DOC = Path(__file__).resolve().parents[1] / "docs" / "data-dictionary.md"
REGENERATE = "cdrflow db upgrade && cdrflow db dictionary > docs/data-dictionary.md"


@pytest.fixture(scope="module")
def fresh(new_database) -> str:
    """A new database migrated to the latest sql/ (the session's shared one has test rows and partitions)."""
    url = new_database()
    engine = create_engine(url)
    migrations.upgrade(engine, settings.SQL_DIR)
    engine.dispose()
    return url


def test_every_table_view_column_and_function_has_a_comment(fresh):
    engine = create_engine(fresh)
    with engine.connect() as conn:
        missing = dictionary.missing_comments(conn)
    engine.dispose()
    assert not missing, (
        f"{len(missing)} object(s) without a COMMENT (add COMMENT ON ... in the migration that creates them, "
        f"then regenerate the dictionary: {REGENERATE}):\n  " + "\n  ".join(missing)
    )


def test_the_committed_dictionary_is_what_the_command_prints(fresh):
    done = run_cli("db", "dictionary", env={"CDRFLOW_DATABASE_URL": fresh})
    assert done.returncode == 0, done.stderr
    committed = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    diff = "".join(
        list(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                done.stdout.splitlines(keepends=True),
                "docs/data-dictionary.md (committed)",
                "cdrflow db dictionary (generated)",
            )
        )[:60]
    )
    assert committed == done.stdout, f"docs/data-dictionary.md is out of date; regenerate it: {REGENERATE}\n{diff}"
    assert "### `daily_traffic`" in committed and "### `delivery_gaps`" in committed


def test_a_missing_comment_is_named_and_shows_in_the_dictionary(fresh):
    """What keeps the dictionary true: an uncommented column is reported, and printed as such."""
    engine = create_engine(fresh)
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(text("ALTER TABLE carriers ADD COLUMN undocumented integer"))
        conn.execute(text("CREATE VIEW carrier_codes AS SELECT code FROM carriers"))
        missing = dictionary.missing_comments(conn)
        doc = dictionary.markdown(conn)
        tx.rollback()
    engine.dispose()
    assert missing == ["view carrier_codes", "column carrier_codes.code", "column carriers.undocumented"]
    assert "| `undocumented` | integer | (no comment) |" in doc


def test_the_command_refuses_a_warehouse_that_lacks_migrations(new_database):
    done = run_cli("db", "dictionary", env={"CDRFLOW_DATABASE_URL": new_database()})
    assert done.returncode == 1 and done.stdout == ""
    assert "run `cdrflow db upgrade` first" in done.stderr and "001_registry.sql" in done.stderr
