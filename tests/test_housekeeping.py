"""Housekeeping repairs what a dead worker left: expired claims, files stranded in processing,
partial uploads in the raw store (issue 9, item 4)."""

from __future__ import annotations

import io
import os
import time

from sqlalchemy import text
from tests.airflow_runs import airflow_db, dagbag, pipeline  # fixtures

from cdrflow.dev import generate
from cdrflow.intake import claims, housekeeping
from cdrflow.intake.registry import register_file, set_status
from conftest import run_cli


def _register(engine, store, n: int) -> list[int]:
    return [
        register_file(
            engine,
            store,
            io.BytesIO(generate.asterisk_bytes(3, seed=900 + i)),
            file_name=f"k{i}.csv",
            carrier="acme",
            file_source="upload",
        ).file_id
        for i in range(n)
    ]


def test_housekeeping_repairs_a_dead_workers_leftovers_and_nothing_live(
    engine, store, carrier, warehouse_url, tmp_path
):
    dead, live, waiting, locked = _register(engine, store, 4)
    with engine.begin() as conn:
        for file_id in (dead, live, locked):  # as a worker of the old kind left them
            set_status(conn, file_id, "processing", "unpacking archive")
    claims.claim(engine, "killed-run", file_ids=[waiting])
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO file_claims (file_id, run_id, claimed_at) VALUES (:d, 'killed-run', now() - interval '1 hour')"
            ),
            {"d": dead},
        )
        conn.execute(text("INSERT INTO file_claims (file_id, run_id) VALUES (:l, 'working-run')"), {"l": live})
        conn.execute(
            text("UPDATE file_claims SET claimed_at = now() - interval '10 minutes' WHERE file_id = :w"), {"w": waiting}
        )
    parts = tmp_path / "raw" / "tmp"
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "killed-upload.part").write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    os.utime(parts / "killed-upload.part", (two_hours_ago, two_hours_ago))
    (parts / "uploading-now.part").write_bytes(b"a file being written")

    holder = engine.connect()  # a live transaction holds `locked`: it is being worked on
    trans = holder.begin()
    holder.execute(text("SELECT 1 FROM cdr_files WHERE id = :i FOR UPDATE"), {"i": locked})
    env = {"CDRFLOW_DATABASE_URL": warehouse_url, "CDRFLOW_RAW_STORE": store.base_url}
    done = run_cli("housekeeping", env=env)
    trans.rollback()
    holder.close()

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"claim of run killed-run on file {dead} expired: removed",
        f"claim of run killed-run on file {waiting} expired: removed",
        f"file {dead}: processing with no live claim: back to received",
        "raw store: removed the partial upload tmp/killed-upload.part",
    ]
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM cdr_files")).all())
        held = conn.execute(text("SELECT file_id, run_id FROM file_claims")).all()
        log = conn.execute(text("SELECT processing_log FROM cdr_files WHERE id = :i"), {"i": dead}).scalar()
    assert statuses == {dead: "received", live: "processing", waiting: "received", locked: "processing"}
    assert [tuple(h) for h in held] == [(live, "working-run")]
    assert "status received: housekeeping: processing with no live claim (its worker died)" in log
    assert sorted(p.name for p in parts.iterdir()) == ["uploading-now.part"]
    assert [c.id for c in claims.claim(engine, "next")] == [dead, waiting]  # both back in the queue

    again = housekeeping.run(engine, store)  # the live worker's file, now unlocked and unclaimed too
    assert again.requeued == [locked] and again.parts_deleted == []
    assert housekeeping.run(engine, store).lines() == ["nothing to repair"]


def test_a_processing_run_repairs_a_dead_workers_files_first_and_loads_them(pipeline, engine, store, carrier, tmp_path):
    """Housekeeping is the start of ``claim`` (no task of its own): the files it frees are
    claimed and loaded by the same run, and the stale partial upload is removed."""
    dead, waiting = _register(engine, store, 2)
    with engine.begin() as conn:
        set_status(conn, dead, "processing", "unpacking archive")
        conn.execute(
            text(
                "INSERT INTO file_claims (file_id, run_id, claimed_at) VALUES (:d, 'killed-run', now() - interval '1 hour')"
            ),
            {"d": dead},
        )
    claims.claim(engine, "killed-run", file_ids=[waiting])
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE file_claims SET claimed_at = now() - interval '10 minutes' WHERE file_id = :w"), {"w": waiting}
        )
    part = tmp_path / "raw" / "tmp" / "killed-upload.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"half a file")
    os.utime(part, (time.time() - 7200, time.time() - 7200))
    pipeline.configure([{"code": "acme", "file_type": "asterisk_csv"}])

    run = pipeline.process()

    assert run.state == "success", run.tasks
    assert run.tasks == {"claim": ["success"], "process": ["success"], "report": ["success"]}
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM cdr_files")).all())
        held = conn.execute(text("SELECT count(*) FROM file_claims")).scalar()
    assert statuses == {dead: "loaded", waiting: "loaded"} and held == 0
    assert not part.exists()
