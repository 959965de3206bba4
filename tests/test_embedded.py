"""The zero-setup default: with no warehouse configured, an embedded PostgreSQL serves."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from conftest import run_cli


def test_without_configuration_an_embedded_server_starts_and_migrates(tmp_path):
    env = {"CDRFLOW_STATE_DIR": str(tmp_path / "state")}
    try:
        first = run_cli("db", "upgrade", env=env)
        assert first.returncode == 0, first.stderr
        assert "migration(s) applied now" in first.stdout and "0 migration(s) applied now" not in first.stdout
        assert (tmp_path / "state" / "pgdata" / "PG_VERSION").exists()

        url = run_cli("db", "url", env=env).stdout.strip()
        assert "host=" in url and str(tmp_path) in url  # a socket in our state directory
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM cdrflow_migrations")).scalar() >= 2
            assert conn.execute(text("SHOW server_version_num")).scalar()
        engine.dispose()

        again = run_cli("db", "upgrade", env=env)
        assert again.returncode == 0 and "(0 migration(s) applied now" in again.stdout
    finally:
        stop = run_cli("db", "stop", env=env)
    assert stop.returncode == 0 and "stopped" in stop.stdout


def test_with_a_configured_url_nothing_is_started(tmp_path, warehouse_url):
    env = {"CDRFLOW_STATE_DIR": str(tmp_path / "state"), "CDRFLOW_DATABASE_URL": warehouse_url}
    out = run_cli("db", "upgrade", env=env)
    assert out.returncode == 0, out.stderr
    assert "(0 migration(s) applied now" in out.stdout
    assert not (tmp_path / "state" / "pgdata").exists()


def test_the_airflow_connection_is_used_when_no_url_is_set(tmp_path, warehouse_url):
    from sqlalchemy.engine import make_url

    u = make_url(warehouse_url)
    conn_json = json.dumps(
        {"conn_type": "postgres", "host": u.host, "port": u.port or 5432, "login": u.username, "schema": u.database}
    )
    env = {"CDRFLOW_STATE_DIR": str(tmp_path / "state"), "AIRFLOW_CONN_CDRFLOW_WAREHOUSE": conn_json}
    out = run_cli("db", "url", env=env)
    assert out.returncode == 0, out.stderr
    assert make_url(out.stdout.strip()).database == u.database
    assert not (tmp_path / "state" / "pgdata").exists()


def test_an_unusable_url_gives_a_clear_error(tmp_path):
    env = {"CDRFLOW_STATE_DIR": str(tmp_path / "state"), "CDRFLOW_DATABASE_URL": "mysql://x@y/z"}
    out = run_cli("db", "upgrade", env=env)
    assert out.returncode == 1
    assert "error: the warehouse must be PostgreSQL, got 'mysql'" in out.stderr
