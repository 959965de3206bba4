"""Warehouse migrations: from empty, twice, concurrently, and the refusals."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cdrflow.config import settings
from cdrflow.config.errors import MigrationError
from cdrflow.warehouse import migrations

EXPECTED_TABLES = {"cdr_files", "calls", "rejected_rows", "carriers", "file_types", "cdrflow_migrations"}


def _schema(url: str) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' ORDER BY 1, 2"
            )
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_upgrade_from_empty_creates_the_warehouse(new_database):
    url = new_database()
    engine = create_engine(url)
    done = migrations.upgrade(engine, settings.SQL_DIR)
    assert [m.version for m in done] == [m.version for m in migrations.discover(settings.SQL_DIR)]
    with engine.connect() as conn:
        tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        calls_kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'calls'")).scalar()
        recorded = conn.execute(text("SELECT count(*) FROM cdrflow_migrations")).scalar()
    engine.dispose()
    assert EXPECTED_TABLES <= tables
    assert calls_kind == "p"  # partitioned
    assert recorded == len(done)


def test_upgrade_twice_changes_nothing(new_database):
    url = new_database()
    engine = create_engine(url)
    migrations.upgrade(engine, settings.SQL_DIR)
    before = _schema(url)
    with engine.connect() as conn:
        stamps = conn.execute(text("SELECT version, applied_at FROM cdrflow_migrations ORDER BY 1")).all()
    assert migrations.upgrade(engine, settings.SQL_DIR) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version, applied_at FROM cdrflow_migrations ORDER BY 1")).all() == stamps
    engine.dispose()
    assert _schema(url) == before


def _upgrade_in_process(url: str, barrier, results) -> None:
    engine = create_engine(url)
    barrier.wait()
    results.put([m.version for m in migrations.upgrade(engine, settings.SQL_DIR)])


def test_two_processes_upgrading_at_once_apply_each_migration_once(new_database):
    url = new_database()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_upgrade_in_process, args=(url, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    applied = sorted([results.get(timeout=5), results.get(timeout=5)], key=len)
    all_versions = [m.version for m in migrations.discover(settings.SQL_DIR)]
    assert applied == [[], all_versions]  # one process did the work, the other found it done
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cdrflow_migrations")).scalar() == len(all_versions)
    engine.dispose()


def test_an_edited_migration_is_refused(new_database, tmp_path: Path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(settings.SQL_DIR, sql_dir)
    engine = create_engine(new_database())
    migrations.upgrade(engine, sql_dir)
    first = sorted(sql_dir.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrations.upgrade(engine, sql_dir)
    engine.dispose()


def test_a_failing_migration_rolls_back_whole_and_can_be_fixed(new_database, tmp_path: Path):
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "001_ok.sql").write_text("CREATE TABLE one (id int);")
    (sql_dir / "002_broken.sql").write_text("CREATE TABLE two (id int);\nCREATE TABLE oops (;")
    engine = create_engine(new_database())
    with pytest.raises(MigrationError, match="002_broken.sql failed and was rolled back"):
        migrations.upgrade(engine, sql_dir)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('one') IS NOT NULL")).scalar()
        assert not conn.execute(text("SELECT to_regclass('two') IS NOT NULL")).scalar()
    assert set(migrations.applied(engine)) == {1}
    (sql_dir / "002_broken.sql").write_text("CREATE TABLE two (id int);")
    assert [m.version for m in migrations.upgrade(engine, sql_dir)] == [2]
    engine.dispose()


def test_badly_named_migration_file_is_refused(tmp_path: Path):
    (tmp_path / "1-init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_name.sql"):
        migrations.discover(tmp_path)


def test_charges_written_before_030_keep_their_breakdown(new_database, tmp_path: Path):
    """030 turns charges.breakdown from jsonb into json on a warehouse that has charges: each
    keeps its breakdown (the same JSON), and what analysts read from it reads the same."""
    sql_dir = tmp_path / "sql"
    shutil.copytree(settings.SQL_DIR, sql_dir)
    later = [p for p in sql_dir.glob("*.sql") if int(p.name.split("_")[0]) >= 30]
    held = {p.name: p.read_text() for p in later}
    for p in later:
        p.unlink()
    engine = create_engine(new_database())
    migrations.upgrade(engine, sql_dir)
    breakdown = '{"deck": "acme", "rate": "0.10", "slots": [{"seconds": 60, "amount": "0.1000", "period": ""}]}'
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO charges (billrun_id, call_id, carrier, record_key, start_time, side, cost, currency, breakdown) "
                "VALUES (1, 1, 'c', 'k', '2026-11-01T10:00:00Z', 'sell', 0.1, 'EUR', CAST(:b AS jsonb))"
            ),
            {"b": breakdown},
        )
    for name, body in held.items():
        (sql_dir / name).write_text(body)
    assert 30 in [m.version for m in migrations.upgrade(engine, sql_dir)]
    with engine.connect() as conn:
        kind = conn.execute(
            text(
                "SELECT data_type FROM information_schema.columns WHERE table_name = 'charges' AND column_name = 'breakdown'"
            )
        ).scalar()
        rate, period, whole = conn.execute(
            text("SELECT breakdown ->> 'rate', breakdown -> 'slots' -> 0 ->> 'period', breakdown::jsonb FROM charges")
        ).one()
    engine.dispose()
    assert kind == "json"
    assert (rate, period) == ("0.10", "")
    assert whole == {"deck": "acme", "rate": "0.10", "slots": [{"seconds": 60, "amount": "0.1000", "period": ""}]}
