"""Claims and batches: overlapping processing runs never share a file; a day of small files is
a handful of tasks; the command line runs what the DAGs run."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from cdrflow.dev import generate
from cdrflow.intake import claims
from cdrflow.intake.registry import register_file
from conftest import run_cli


def _register(engine, store, tmp_path, n: int, rows: int = 5) -> list[int]:
    ids = []
    for i in range(n):
        path = tmp_path / f"f{i}.csv"
        path.write_bytes(generate.asterisk_bytes(rows, seed=1000 + i))
        ids.append(
            register_file(engine, store, path, file_name=path.name, carrier="acme", file_source="upload").file_id
        )
    return ids


def test_a_run_claiming_while_another_holds_its_claim_gets_the_other_files(engine, store, carrier, tmp_path):
    ids = _register(engine, store, tmp_path, 6)
    with engine.connect() as conn:
        trans = conn.begin()  # run A has claimed 3 files and not committed yet
        a = [
            r.id
            for r in conn.execute(
                claims._CLAIM, {"run": "A", "lease": claims.LEASE, "carrier": None, "ids": None, "limit": 3}
            )
        ]
        b = [c.id for c in claims.claim(engine, "B")]  # B skips A's locked rows
        trans.commit()
    assert sorted(a) == ids[:3] and b == ids[3:]
    assert claims.claim(engine, "C") == []  # everything is claimed by a live run
    assert [c.id for c in claims.claim(engine, "A")] == ids[:3]  # a run may re-take its own (a retry)


def test_an_expired_claim_is_taken_again_and_a_released_one_at_once(engine, store, carrier, tmp_path):
    ids = _register(engine, store, tmp_path, 2)
    assert [c.id for c in claims.claim(engine, "dead-run")] == ids
    assert claims.claim(engine, "next", lease=timedelta(hours=1)) == []
    assert [c.id for c in claims.claim(engine, "next", lease=timedelta(0))] == ids  # dead-run's lease ran out
    claims.release(engine, ids)
    assert [c.id for c in claims.claim(engine, "third")] == ids


def test_claims_filter_by_carrier_and_by_id(engine, store, carrier, tmp_path):
    ids = _register(engine, store, tmp_path, 3)
    assert claims.claim(engine, "r1", carrier="other") == []
    assert [c.id for c in claims.claim(engine, "r1", file_ids=[ids[1]])] == [ids[1]]
    assert [c.id for c in claims.claim(engine, "r2", carrier="acme")] == [ids[0], ids[2]]


def test_batches_cut_by_count_and_bytes_and_never_exceed_the_map_limit():
    small = [claims.Claimed(i, 300_000) for i in range(1, 1001)]
    assert [len(b) for b in claims.batches(small)] == [500, 500]
    mixed = [claims.Claimed(1, 10), claims.Claimed(2, 2 << 30), claims.Claimed(3, 10)]
    assert claims.batches(mixed) == [[1], [2], [3]]  # a big file runs alone
    many = [claims.Claimed(i, 1) for i in range(5000)]
    cut = claims.batches(many, max_files=1, max_batches=100)
    assert len(cut) == 100 and sorted(i for b in cut for i in b) == list(range(5000))
    assert claims.batches([]) == []


def test_requeue_puts_finished_files_back_but_never_a_duplicate(engine, store, carrier, tmp_path):
    ids = _register(engine, store, tmp_path, 1)
    dup = register_file(engine, store, tmp_path / "f0.csv", file_name="again.csv", carrier="acme", file_source="upload")
    with engine.begin() as conn:
        conn.execute(text("UPDATE cdr_files SET status = 'processing' WHERE id = :i"), {"i": ids[0]})
        conn.execute(text("UPDATE cdr_files SET status = 'loaded' WHERE id = :i"), {"i": ids[0]})
    assert claims.requeue(engine, [ids[0], dup.file_id], "operator re-run") == [ids[0]]
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM cdr_files")).all())
    assert statuses == {ids[0]: "received", dup.file_id: "duplicate"}


def test_upload_then_process_from_the_command_line(tmp_path, new_database):
    url = new_database()
    env = {"CDRFLOW_STATE_DIR": str(tmp_path / "state"), "CDRFLOW_DATABASE_URL": url}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    carriers_file = tmp_path / "carriers.yaml"
    carriers_file.write_text(
        "carriers:\n  - code: acme\n    file_type: asterisk_csv\n"
        f"    sources:\n      - kind: bucket\n        url: {tmp_path / 'drop'}\n"
    )
    env["CDRFLOW_CARRIERS_FILE"] = str(carriers_file)
    synced = run_cli("carriers", "sync", env=env)
    assert synced.returncode == 0 and "1 carrier(s)" in synced.stdout, synced.stderr
    day = tmp_path / "Master.csv"
    day.write_bytes(generate.asterisk_bytes(25, seed=77))
    uploaded = run_cli("upload", str(day), "--carrier", "acme", env=env)
    assert uploaded.returncode == 0 and "received" in uploaded.stdout, uploaded.stderr
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "other.csv").write_bytes(generate.asterisk_bytes(10, seed=78))
    collected = run_cli("collect", "bucket", env=env)
    assert collected.returncode == 0 and "other.csv" in collected.stdout, collected.stderr
    processed = run_cli("process", env=env)
    assert processed.returncode == 0, processed.stderr
    assert "2 file(s) processed" in processed.stdout
    assert "25 calls loaded" in processed.stdout and "10 calls loaded" in processed.stdout
    rerun = run_cli("process", "--file-id", "1", env=env)
    assert rerun.returncode == 0 and "file 1: loaded: 25 lines, 25 calls loaded" in rerun.stdout
    unknown = run_cli("upload", str(day), "--carrier", "nobody", env=env)
    assert unknown.returncode == 1 and "unknown carrier 'nobody'" in unknown.stderr


def test_a_renewed_claim_outlives_its_lease_and_a_dead_one_is_taken_after_it(engine, store, carrier, tmp_path):
    import time

    ids = _register(engine, store, tmp_path, 2)
    lease = timedelta(seconds=1)
    assert [c.id for c in claims.claim(engine, "live")] == ids
    with claims.Heartbeat(engine, "live", ids, every=0.2):
        time.sleep(2.5)  # more than two leases, renewed all along
        assert claims.claim(engine, "other", lease=lease) == []
    time.sleep(1.5)  # the heartbeat stopped (the worker died): one lease later...
    assert [c.id for c in claims.claim(engine, "other", lease=lease)] == ids  # ...the files come back


def test_the_default_lease_is_minutes_not_hours():
    assert claims.LEASE <= timedelta(minutes=10) and claims.HEARTBEAT * 4 < claims.LEASE.total_seconds()


def test_a_dead_runs_claim_is_shown_expires_and_can_be_released(tmp_path, new_database):
    url = new_database()
    env = {"CDRFLOW_STATE_DIR": str(tmp_path / "state"), "CDRFLOW_DATABASE_URL": url}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    assert run_cli("carrier", "add", "acme", "--type", "asterisk_csv", env=env).returncode == 0
    for n in (1, 2):
        (tmp_path / f"d{n}.csv").write_bytes(generate.asterisk_bytes(5, seed=300 + n))
    assert (
        run_cli("upload", str(tmp_path / "d1.csv"), str(tmp_path / "d2.csv"), "--carrier", "acme", env=env).returncode
        == 0
    )
    from sqlalchemy import create_engine

    engine = create_engine(url)
    assert [c.id for c in claims.claim(engine, "killed-run")] == [1, 2]  # then kill -9: no heartbeat
    with engine.begin() as conn:  # file 1's last heartbeat a lease ago, file 2's a minute ago
        conn.execute(text("UPDATE file_claims SET claimed_at = now() - interval '6 minutes' WHERE file_id = 1"))
        conn.execute(text("UPDATE file_claims SET claimed_at = now() - interval '1 minute' WHERE file_id = 2"))
    listed = run_cli("files", env=env)
    assert "received (claim of killed-run expired, last renewed 6m ago)" in listed.stdout, listed.stdout
    assert "received (claimed by killed-run, renewed 1m ago)" in listed.stdout
    shown = run_cli("file", "2", env=env)
    claim_line = [line for line in shown.stdout.splitlines() if line.startswith("claim ")]
    assert [line.split(None, 1)[1] for line in claim_line] == ["claimed by killed-run, renewed 1m ago"]
    first = run_cli("process", env=env)
    assert first.returncode == 0, first.stderr
    assert "1 file(s) processed: 1 loaded" in first.stdout and "file 1: loaded" in first.stdout
    released = run_cli("claims", "release", "2", "7", env=env)
    assert released.returncode == 0 and released.stdout.splitlines() == [
        "file 2: claim released",
        "file 7: was not claimed",
    ]
    second = run_cli("process", env=env)
    assert second.returncode == 0 and "file 2: loaded" in second.stdout, second.stdout
    assert run_cli("claims", env=env).stdout.strip() == "no file is claimed"
    engine.dispose()
