"""Each collector DAG, run by Airflow (``dag.test()``) against its real server on loopback,
followed by the processing DAG: files registered, calls loaded, the server cleaned up; a
second round loads nothing new; a server that refuses the connection fails its task with a
clear message, damages nothing, and the next run succeeds."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest
from sqlalchemy import text
from tests.airflow_runs import airflow_db, dagbag, pipeline

from cdrflow.dev import generate
from cdrflow.orchestration.assets import FILES_RECEIVED
from servers.dovecot import free_port, imap_server
from servers.ftpd import ftp_server, ftps_server
from servers.s3 import S3Server, s3_server, start_server
from servers.sshd import sftp_server


def _acme(*sources: dict) -> dict:
    return {"code": "acme", "name": "ACME", "file_type": "asterisk_csv", "sources": list(sources)}


def _files(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT id, file_name, file_source, status, calls_loaded, duplicate_of, source_uri "
                "FROM cdr_files ORDER BY id"
            )
        ).all()


def _calls(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM calls")).scalar()


def _announced(run) -> list[dict]:
    """The ``cdrflow_files_received`` events the collector run emitted (what starts
    ``cdrflow_process``): one per source that registered new files, its extra naming them."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == FILES_RECEIVED.name, AssetEvent.source_run_id == run.dag_run.run_id)
            .order_by(AssetEvent.id)
        ).all()
        assert all(e.source_task_id == "collect" for e in events)
        return [e.extra for e in events]


def _assert_loaded(engine, source: str, names: set[str], calls: int) -> None:
    rows = _files(engine)
    assert {r.file_name for r in rows} == names
    assert {(r.file_source, r.status) for r in rows} == {(source, "loaded")}
    assert _calls(engine) == calls


def test_bucket_dags_collect_process_and_stay_idempotent(pipeline, engine, tmp_path, s3_server, monkeypatch):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_bytes(generate.asterisk_bytes(300, seed=1))
    (drop / "b.csv").write_bytes(generate.asterisk_bytes(200, seed=2))
    (drop / "notes.txt").write_text("not a CDR file")
    bucket = s3_server.create_bucket()
    s3_server.put(bucket, "in/c.csv", generate.asterisk_bytes(100, seed=3))
    monkeypatch.setenv("AIRFLOW_CONN_DAG_S3", s3_server.airflow_conn_json())
    pipeline.configure(
        [
            _acme(
                {"kind": "bucket", "url": str(drop), "patterns": ["*.csv"]},
                {"kind": "bucket", "url": f"s3://{bucket}/in/", "conn_id": "dag_s3"},
            )
        ]
    )

    collected, processed = pipeline.collect_and_process("bucket")
    assert collected.state == "success", collected.tasks
    assert collected.tasks == {"plan": ["success"], "collect": ["success", "success"]}
    # the asset events that start processing: one per source that registered something new
    assert sorted(e["new"] for e in _announced(collected)) == [1, 2]
    assert processed.state == "success", processed.tasks
    _assert_loaded(engine, "bucket", {"a.csv", "b.csv", "c.csv"}, 600)
    assert sorted(p.name for p in drop.iterdir()) == ["notes.txt", "processed"]
    assert sorted(p.name for p in (drop / "processed").iterdir()) == ["a.csv", "b.csv"]
    assert s3_server.keys(bucket) == ["in/processed/c.csv"]

    # the same bytes dropped again under another name: a duplicate, nothing new loaded
    (drop / "again.csv").write_bytes((drop / "processed" / "a.csv").read_bytes())
    collected, processed = pipeline.collect_and_process("bucket")
    assert _announced(collected) == []  # nothing new: processing not woken
    assert processed.state == "success"
    assert _calls(engine) == 600
    again = [r for r in _files(engine) if r.file_name == "again.csv"]
    assert again[0].status == "duplicate" and again[0].duplicate_of is not None


def test_a_refused_server_fails_its_task_only_and_the_next_run_succeeds(
    pipeline, engine, tmp_path, s3_server, monkeypatch
):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_bytes(generate.asterisk_bytes(50, seed=7))
    port = free_port()  # nothing listens there yet: the carrier's server is down
    monkeypatch.setenv(
        "AIRFLOW_CONN_LATE_S3", s3_server.airflow_conn_json(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    )
    pipeline.configure(
        [_acme({"kind": "bucket", "url": str(drop)}, {"kind": "bucket", "url": "s3://late/", "conn_id": "late_s3"})]
    )

    collected = pipeline.run("cdrflow_collect_bucket")
    assert collected.state == "failed"  # red in the UI
    assert sorted(collected.tasks["collect"]) == ["failed", "success"]
    assert [e["new"] for e in _announced(collected)] == [1]  # what did arrive still gets processed
    assert [(r.file_name, r.status) for r in _files(engine)] == [("a.csv", "received")]

    server, endpoint = start_server(port)  # the server is back, with a file waiting
    try:
        late = S3Server(endpoint_url=endpoint)
        late.create_bucket("late")
        late.put("late", "x.csv", generate.asterisk_bytes(40, seed=8))
        collected, processed = pipeline.collect_and_process("bucket")
        assert collected.state == "success", collected.tasks
        assert processed.state == "success", processed.tasks
        _assert_loaded(engine, "bucket", {"a.csv", "x.csv"}, 90)
        assert late.keys("late") == ["processed/x.csv"]
    finally:
        server.stop()


def test_an_unwritable_raw_store_fails_the_collector_run_and_registers_nothing(pipeline, engine, tmp_path, monkeypatch):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "ok.csv").write_bytes(generate.asterisk_bytes(10, seed=9))
    in_the_way = tmp_path / "disk"
    in_the_way.write_bytes(b"a regular file where the store's directory should be")
    monkeypatch.setenv("CDRFLOW_RAW_STORE", (in_the_way / "raw").as_uri())
    pipeline.configure([_acme({"kind": "bucket", "url": str(drop)})])

    collected = pipeline.run("cdrflow_collect_bucket")

    assert collected.state == "failed"  # red: intake is stalled, not quietly skipping files
    assert collected.tasks["collect"] == ["failed"] and _announced(collected) == []
    assert _files(engine) == []
    assert sorted(p.name for p in drop.iterdir()) == ["ok.csv", "processed"]  # taken once the store is back


def _mail(sender: str, subject: str, attachments: dict[str, bytes]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "cdr@billing.example", subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@acme.example>"
    msg.set_content("CDRs attached")
    for name, data in attachments.items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg


def test_mailbox_dags_collect_process_and_stay_idempotent(pipeline, engine, imap_server, monkeypatch):
    imap_server.reset()
    monkeypatch.setenv(imap_server.env_name("dag_imap"), imap_server.airflow_conn_json())
    pipeline.configure(
        [
            _acme(
                {
                    "kind": "mailbox",
                    "conn_id": "dag_imap",
                    "senders": ["*@acme.example"],
                    "attachments": ["*.csv"],
                    "processed_folder": "Done",
                }
            )
        ]
    )
    first = generate.asterisk_bytes(120, seed=11)
    imap_server.append(
        "INBOX",
        _mail(
            "cdr@acme.example",
            "day 1",
            {"Master-1.csv": first, "Master-2.csv": generate.asterisk_bytes(80, seed=12), "logo.png": b"\x89PNG"},
        ),
    )
    imap_server.append("INBOX", _mail("eve@evil.example", "not ours", {"Master-9.csv": b"x"}))

    collected, processed = pipeline.collect_and_process("mailbox")
    assert collected.state == "success" and processed.state == "success", (collected.tasks, processed.tasks)
    _assert_loaded(engine, "email", {"Master-1.csv", "Master-2.csv"}, 200)
    assert imap_server.subjects("Done") == ["day 1"]
    assert imap_server.subjects("INBOX") == ["not ours"]

    imap_server.append("INBOX", _mail("cdr@acme.example", "resent", {"Master-1-again.csv": first}))
    collected, processed = pipeline.collect_and_process("mailbox")
    assert _announced(collected) == []
    assert _calls(engine) == 200
    assert [r.status for r in _files(engine) if r.file_name == "Master-1-again.csv"] == ["duplicate"]

    monkeypatch.setenv(imap_server.env_name("dag_imap"), imap_server.airflow_conn_json(port=free_port()))
    refused = pipeline.run("cdrflow_collect_mailbox")
    assert refused.state == "failed" and refused.tasks["collect"] == ["failed"]
    assert len(_files(engine)) == 3  # no registry damage


def test_processing_params_reprocess_a_file_and_limit_to_a_carrier(pipeline, engine, tmp_path):
    drop_a, drop_k = tmp_path / "acme", tmp_path / "kazoo"
    drop_a.mkdir(), drop_k.mkdir()
    (drop_a / "a.csv").write_bytes(generate.asterisk_bytes(100, seed=21))
    (drop_k / "k.json").write_text(json.dumps(generate.kazoo_records(30, seed=22, day=generate.demo_day())))
    pipeline.configure(
        [
            _acme({"kind": "bucket", "url": str(drop_a)}),
            {"code": "kazoo", "file_type": "kazoo_json", "sources": [{"kind": "bucket", "url": str(drop_k)}]},
        ]
    )
    assert pipeline.run("cdrflow_collect_bucket").state == "success"

    only_kazoo = pipeline.process(carrier="kazoo")
    assert only_kazoo.state == "success"
    assert {r.file_name: r.status for r in _files(engine)} == {"a.csv": "received", "k.json": "loaded"}
    assert pipeline.process().state == "success"
    assert _calls(engine) == 130

    file_id = next(r.id for r in _files(engine) if r.file_name == "a.csv")
    rerun = pipeline.process(file_ids=f"{file_id}")  # typed into the form
    assert rerun.state == "success"
    row = next(r for r in _files(engine) if r.id == file_id)
    assert (row.status, row.calls_loaded) == ("loaded", 100)  # replaced, not counted as duplicates
    assert _calls(engine) == 130
    with engine.connect() as conn:
        log = conn.execute(text("SELECT processing_log FROM cdr_files WHERE id = :i"), {"i": file_id}).scalar()
    assert "operator re-run requested" in log and "calls of the earlier load are replaced" in log


def test_sftp_dags_skip_a_growing_file_then_take_it_whole(pipeline, engine, sftp_server, monkeypatch):
    import threading

    monkeypatch.setenv("AIRFLOW_CONN_DAG_SFTP", sftp_server.airflow_conn_json())
    out = sftp_server.root / "outgoing"
    out.mkdir()
    (out / "Master-1.csv").write_bytes(generate.asterisk_bytes(150, seed=31))
    growing = out / "Master-2.csv"
    rows = generate.asterisk_bytes(400, seed=32).splitlines(keepends=True)
    growing.write_bytes(b"".join(rows[:10]))
    stop = threading.Event()

    def carrier_still_writing():  # one line every 50 ms: the size keeps changing
        with open(growing, "ab") as f:
            for line in rows[10:]:
                if stop.wait(0.05):
                    return
                f.write(line)
                f.flush()

    pipeline.configure(
        [
            _acme(
                {
                    "kind": "sftp",
                    "conn_id": "dag_sftp",
                    "directories": ["outgoing"],
                    "patterns": ["Master-*.csv"],
                    "settle_seconds": 1,
                    "after": "move",
                    "move_to": "outgoing/collected",
                }
            )
        ]
    )
    writer = threading.Thread(target=carrier_still_writing)
    writer.start()
    try:
        collected, processed = pipeline.collect_and_process("sftp")
    finally:
        stop.set()
        writer.join()
    assert collected.state == "success" and processed.state == "success", (collected.tasks, processed.tasks)
    _assert_loaded(engine, "sftp", {"Master-1.csv"}, 150)
    assert growing.exists()  # left on the server for the next run

    growing.write_bytes(b"".join(rows))  # the carrier finished writing
    collected, processed = pipeline.collect_and_process("sftp")
    _assert_loaded(engine, "sftp", {"Master-1.csv", "Master-2.csv"}, 550)
    assert sorted(p.name for p in (out / "collected").iterdir()) == ["Master-1.csv", "Master-2.csv"]
    assert sorted(p.name for p in out.iterdir()) == ["collected"]

    collected, processed = pipeline.collect_and_process("sftp")  # nothing left: nothing new
    assert _announced(collected) == [] and len(_files(engine)) == 2

    monkeypatch.setenv("AIRFLOW_CONN_DAG_SFTP", sftp_server.airflow_conn_json(port=free_port()))
    refused = pipeline.run("cdrflow_collect_sftp")
    assert refused.state == "failed" and refused.tasks["collect"] == ["failed"]
    assert len(_files(engine)) == 2


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_ftp_dags_collect_delete_and_recover_from_a_refusal(pipeline, engine, request, monkeypatch, tls):
    server = request.getfixturevalue("ftps_server" if tls else "ftp_server")
    (server.root / "reports").mkdir()
    (server.root / "reports" / "cdr-1.csv").write_bytes(generate.asterisk_bytes(70, seed=41))
    (server.root / "reports" / "cdr-1.csv.done").write_bytes(b"")
    (server.root / "reports" / "cdr-2.csv").write_bytes(generate.asterisk_bytes(60, seed=42))  # no marker yet
    pipeline.configure(
        [
            _acme(
                {
                    "kind": "ftp",
                    "conn_id": "dag_ftp",
                    "directories": ["/reports"],
                    "patterns": ["*.csv"],
                    "done_marker": ".done",
                    "settle_seconds": 0,
                    "after": "delete",
                }
            )
        ]
    )

    monkeypatch.setenv("AIRFLOW_CONN_DAG_FTP", server.airflow_conn_json(port=free_port()))
    refused = pipeline.run("cdrflow_collect_ftp")
    assert refused.state == "failed" and refused.tasks["collect"] == ["failed"]
    assert _files(engine) == []

    monkeypatch.setenv("AIRFLOW_CONN_DAG_FTP", server.airflow_conn_json())
    collected, processed = pipeline.collect_and_process("ftp")
    assert collected.state == "success" and processed.state == "success", (collected.tasks, processed.tasks)
    _assert_loaded(engine, "ftp", {"cdr-1.csv"}, 70)
    assert sorted(p.name for p in (server.root / "reports").iterdir()) == ["cdr-2.csv"]

    (server.root / "reports" / "cdr-2.csv.done").write_bytes(b"")
    pipeline.collect_and_process("ftp")
    _assert_loaded(engine, "ftp", {"cdr-1.csv", "cdr-2.csv"}, 130)
    assert list((server.root / "reports").iterdir()) == []
