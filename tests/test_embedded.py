"""Which warehouse: the embedded server only when chosen, a configured one, or a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from conftest import run_cli


def test_without_configuration_nothing_is_started_and_the_error_says_what_to_set(tmp_path):
    env = {"CDRFLOW_STATE_DIR": str(tmp_path / "state")}
    out = run_cli("files", env=env)
    assert out.returncode == 1
    assert out.stderr.startswith("error: no warehouse configured: set CDRFLOW_DATABASE_URL to a PostgreSQL URL")
    assert out.stderr.count("\n") == 1
    assert not (tmp_path / "state" / "pgdata").exists()


def test_the_embedded_server_is_chosen_explicitly_and_remembered(tmp_path):
    state = tmp_path / "state"
    env = {"CDRFLOW_STATE_DIR": str(state), "CDRFLOW_DATABASE_URL": "embedded"}
    try:
        first = run_cli("db", "upgrade", env=env)
        assert first.returncode == 0, first.stderr
        assert "migration(s) applied now" in first.stdout and "(0 migration(s) applied now" not in first.stdout
        assert (state / "pgdata" / "PG_VERSION").exists()

        url = run_cli("db", "url", env=env).stdout.strip()
        assert "host=" in url and str(tmp_path) in url  # a socket in our state directory
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM cdrflow_migrations")).scalar() >= 2
        engine.dispose()

        # later commands with nothing set (what a user types after `make demo`) find it again
        remembered = {"CDRFLOW_STATE_DIR": str(state)}
        assert run_cli("db", "url", env=remembered).stdout.strip() == url
        files = run_cli("files", env=remembered)
        assert files.returncode == 0, files.stderr
        again = run_cli("db", "upgrade", env=remembered)
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


def test_an_unreachable_warehouse_is_one_line_without_the_password(tmp_path):
    env = {
        "CDRFLOW_STATE_DIR": str(tmp_path / "state"),
        "CDRFLOW_DATABASE_URL": "postgresql://ops:s3cret@127.0.0.1:1/wh",
    }
    for args in (["files"], ["db", "upgrade"]):
        out = run_cli(*args, env=env)
        assert out.returncode == 1
        assert out.stderr.startswith("error: cannot reach the warehouse postgresql+psycopg2://ops:***@127.0.0.1:1/wh: ")
        assert "Connection refused" in out.stderr and out.stderr.count("\n") == 1, out.stderr
        assert "s3cret" not in out.stderr


def test_the_cli_keeps_airflow_home_under_the_state_directory(tmp_path, warehouse_url, carrier):
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    sample = tmp_path / "Master.csv"
    sample.write_bytes(b"not parsed here\n")
    env = {"HOME": str(home), "CDRFLOW_STATE_DIR": str(state), "CDRFLOW_DATABASE_URL": warehouse_url}
    # the default raw store is a local folder (file://...): storing the bytes needs no Airflow
    out = run_cli("upload", str(sample), "--carrier", carrier, env=env, unset=("AIRFLOW_HOME",))
    assert out.returncode == 0, out.stderr
    assert not (home / "airflow").exists() and not (state / "airflow").exists()
    # a store given as a bare path goes through Airflow's ObjectStoragePath, which imports Airflow
    sample.write_bytes(b"not parsed here either\n")
    env["CDRFLOW_RAW_STORE"] = str(tmp_path / "raw")
    out = run_cli("upload", str(sample), "--carrier", carrier, env=env, unset=("AIRFLOW_HOME",))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "raw" / "sha1").is_dir()
    assert not (home / "airflow").exists()
    assert (state / "airflow").is_dir()


DENYING_BACKEND = """
from airflow.secrets.base_secrets import BaseSecretsBackend
from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied


class Deny(BaseSecretsBackend):
    # a secrets backend that refuses (as Vault does to a worker whose token expired)

    def get_connection(self, conn_id):
        raise AirflowSecretsBackendAccessDenied(f"vault says no to {conn_id}")
"""


def test_a_task_whose_connection_lookup_fails_gets_the_error_not_another_database(tmp_path):
    (tmp_path / "deny_backend.py").write_text(DENYING_BACKEND)
    script = textwrap.dedent("""
        import airflow.sdk  # what a task process has imported
        from cdrflow.config.errors import ConfigurationError
        from cdrflow.warehouse import db
        try:
            print("resolved", db.resolve_url())
        except ConfigurationError as exc:
            print("error:", exc)
    """)
    env = {
        "PYTHONPATH": str(tmp_path),
        "CDRFLOW_STATE_DIR": str(tmp_path / "state"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__SECRETS__BACKEND": "deny_backend.Deny",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "error: cannot read the Airflow connection cdrflow_warehouse: " in out.stdout, out.stdout + out.stderr
    assert "vault says no to cdrflow_warehouse" in out.stdout
    assert not (tmp_path / "state" / "pgdata").exists()
