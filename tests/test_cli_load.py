"""`cdrflow parse` (dry run) and `cdrflow load` as a user runs them."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import create_engine, text

from cdrflow.dev import generate
from conftest import run_cli


def test_parse_prints_canonical_rows_and_writes_nothing(tmp_path):
    path = tmp_path / "Master.csv"
    path.write_bytes(generate.asterisk_bytes(3, seed=2) + b'"only","three","columns"\n')
    env = {"CDRFLOW_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}  # never contacted
    out = run_cli("parse", "--type", "asterisk_csv", "--output", "jsonl", str(path), env=env)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 3 and records[0]["line_number"] == 1
    assert records[0]["extras"]["lastapp"] == "Dial"
    assert "rejected line 4: parse:column_count:expected 18, got 3" in out.stderr
    assert "3 calls, 1 rejected rows" in out.stderr
    assert "expect_column_values_to_not_be_null(carrier_call_id): ok" in out.stderr


def test_parse_of_an_unusable_file_exits_1_with_the_reason(tmp_path):
    path = tmp_path / "cdrs.json"
    path.write_text('[{"call_id": "x"}]')
    out = run_cli("parse", "--type", "asterisk_csv", str(path))
    assert out.returncode == 1
    assert out.stderr.strip().endswith("error: this is JSON, not an Asterisk Master.csv (wrong type for the file?)")
    missing = run_cli("parse", "--type", "asterisk_csv", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_load_registers_loads_and_reports(tmp_path, new_database):
    url = new_database()
    env = {"CDRFLOW_DATABASE_URL": url, "CDRFLOW_STATE_DIR": str(tmp_path / "state")}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    added = run_cli("carrier", "add", "acme", "--type", "asterisk_csv", env=env)
    assert added.returncode == 0, added.stderr
    path = tmp_path / "Master.csv"
    path.write_bytes(generate.asterisk_bytes(50, seed=3))
    out = run_cli("load", str(path), "--carrier", "acme", env=env)
    assert out.returncode == 0, out.stderr
    assert "loaded: 50 lines, 50 calls loaded, 0 rejected, 0 duplicates" in out.stdout
    again = run_cli("load", str(path), "--carrier", "acme", env=env)
    assert again.returncode == 0 and "duplicate of file 1" in again.stdout
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 50
    engine.dispose()
    bad = tmp_path / "garbage.csv"
    bad.write_bytes(bytes(range(256)) * 4)
    refused = run_cli("load", str(bad), "--carrier", "acme", env=env)
    assert refused.returncode == 1 and "rejected" in refused.stdout and "binary data" in refused.stderr


def _warehouse(tmp_path, new_database) -> tuple[dict[str, str], str]:
    url = new_database()
    env = {"CDRFLOW_DATABASE_URL": url, "CDRFLOW_STATE_DIR": str(tmp_path / "state")}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    added = run_cli("carrier", "add", "acme", "--type", "asterisk_csv", env=env)
    assert added.returncode == 0, added.stderr
    return env, url


def test_load_of_a_file_whose_first_copy_was_never_loaded_loads_the_original(tmp_path, new_database):
    env, url = _warehouse(tmp_path, new_database)
    path = tmp_path / "Master.csv"
    path.write_bytes(generate.asterisk_bytes(30, seed=4))
    assert run_cli("register", str(path), "--carrier", "acme", env=env).returncode == 0  # then a crash
    out = run_cli("load", str(path), "--carrier", "acme", env=env)
    assert out.returncode == 0, out.stderr
    said, loaded = out.stdout.splitlines()
    assert said.endswith(
        ": duplicate of file 1 (same SHA1 "
        f"{hashlib.sha1(path.read_bytes()).hexdigest()}), which was never loaded: loading file 1 (the same bytes)"
    )
    assert loaded == "file 1: loaded: 30 lines, 30 calls loaded, 0 rejected, 0 duplicates"
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM calls WHERE file_id = 1")).scalar() == 30
        assert conn.execute(text("SELECT status FROM cdr_files ORDER BY id")).scalars().all() == ["loaded", "duplicate"]
    engine.dispose()
    again = run_cli("load", str(path), "--carrier", "acme", env=env)
    assert again.returncode == 0 and "not loaded again: file 1 is loaded" in again.stdout


def test_process_and_load_exit_1_with_a_line_per_file_that_did_not_end_loaded(tmp_path, new_database):
    env, _ = _warehouse(tmp_path, new_database)
    good, garbage = tmp_path / "good.csv", tmp_path / "garbage.csv"
    good.write_bytes(generate.asterisk_bytes(10, seed=5))
    garbage.write_bytes(bytes(range(256)) * 4)
    assert run_cli("upload", str(good), str(garbage), "--carrier", "acme", env=env).returncode == 0
    processed = run_cli("process", env=env)
    assert processed.returncode == 1
    assert "file 1: loaded: 10 lines, 10 calls loaded" in processed.stdout
    assert "2 file(s) processed: 1 loaded, 1 rejected" in processed.stdout
    errors = [line for line in processed.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: file 2: rejected: ") and "binary data" in errors[0]
    nothing = run_cli("process", env=env)
    assert nothing.returncode == 0 and nothing.stdout.strip() == "0 file(s) processed"
    loaded = run_cli("load", str(tmp_path / "good.csv"), "--carrier", "acme", env=env)
    assert loaded.returncode == 0  # a duplicate of a loaded file
    refused = run_cli("load", str(garbage), "--carrier", "acme", env=env)
    assert refused.returncode == 1  # a duplicate of a rejected file: nothing of it is loaded
    assert "error: file 2 is rejected; see `cdrflow file 2`, re-run it with `cdrflow process --file-id 2`" in (
        refused.stderr
    )
