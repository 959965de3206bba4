"""The file registry: storing bytes, SHA1 de-duplication, status moves, and bad sources."""

from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from cdrflow.config.errors import IllegalTransition, RawStoreUnavailable, SourceUnreadable, UnknownCarrier
from cdrflow.intake import registry
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import MailFields, register_file, set_status
from cdrflow.intake.status import FileStatus

PAYLOAD = b'"acct001","+15551234567","+442071234567","from-trunk"\n' * 100


def _rows(engine, sql="SELECT * FROM cdr_files ORDER BY id", **params):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_new_file_is_stored_whole_and_recorded(engine, store, carrier, tmp_path):
    src = tmp_path / "Master.csv"
    src.write_bytes(PAYLOAD)
    reg = register_file(
        engine,
        store,
        src,
        file_name="Master.csv",
        carrier=carrier,
        file_source="email",
        billrun="2026-11",
        mail=MailFields("<m1@example>", "noc@acme.example", "cdr@us.example", "CDRs 1 Nov"),
    )
    assert reg.status is FileStatus.RECEIVED and not reg.is_duplicate
    (row,) = _rows(engine)
    sha1 = hashlib.sha1(PAYLOAD).hexdigest()
    assert row["original_hash"] == sha1 and row["file_size"] == len(PAYLOAD)
    assert row["status"] == "received" and row["revision_number"] == 1
    assert row["file_type"] == "asterisk_csv"  # the carrier's default
    assert (row["mail_message"], row["mail_from"], row["mail_to"], row["mail_subject"]) == (
        "<m1@example>",
        "noc@acme.example",
        "cdr@us.example",
        "CDRs 1 Nov",
    )
    assert f"sha1={sha1}" in row["processing_log"]
    with store.open(row["stored_file_id"]) as blob:
        assert blob.read() == PAYLOAD  # byte-exact
    assert [p.name for p in _blobs(tmp_path / "raw")] == [sha1]


def test_the_same_bytes_again_by_another_source_are_a_duplicate(engine, store, carrier, tmp_path):
    first = register_file(engine, store, io.BytesIO(PAYLOAD), file_name="a.csv", carrier=carrier, file_source="sftp")
    again = register_file(
        engine, store, io.BytesIO(PAYLOAD), file_name="a-resent.csv", carrier=carrier, file_source="email"
    )
    other = register_file(
        engine, store, io.BytesIO(PAYLOAD + b"x"), file_name="b.csv", carrier=carrier, file_source="sftp"
    )
    assert again.is_duplicate and again.duplicate_of == first.file_id
    assert not other.is_duplicate
    rows = _rows(engine)
    assert [(r["file_name"], r["status"], r["duplicate_of"]) for r in rows] == [
        ("a.csv", "received", None),
        ("a-resent.csv", "duplicate", first.file_id),
        ("b.csv", "received", None),
    ]
    assert f"duplicate of file {first.file_id}" in rows[1]["processing_log"]
    assert len(_blobs(tmp_path / "raw")) == 2  # the duplicate's bytes are stored once


def _register_in_process(url, store_url, payload, barrier, results):
    engine = create_engine(url)
    barrier.wait()
    reg = register_file(
        engine, RawStore(store_url), io.BytesIO(payload), file_name="race.csv", carrier="acme", file_source="ftp"
    )
    results.put(str(reg.status))


def test_two_processes_registering_the_same_bytes_make_one_original(engine, store, carrier, warehouse_url):
    ctx = mp.get_context("spawn")
    for round_no in range(2):
        payload = PAYLOAD + f"round {round_no}\n".encode()
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_register_in_process, args=(warehouse_url, store.base_url, payload, barrier, results))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert sorted([results.get(timeout=5), results.get(timeout=5)]) == ["duplicate", "received"]
        rows = _rows(
            engine, "SELECT status FROM cdr_files WHERE original_hash = :h", h=hashlib.sha1(payload).hexdigest()
        )
        assert sorted(r["status"] for r in rows) == ["duplicate", "received"]


def test_an_unreadable_source_leaves_no_row_and_no_blob(engine, store, carrier, tmp_path):
    with pytest.raises(SourceUnreadable, match="cannot read 'missing.csv'"):
        register_file(
            engine, store, tmp_path / "missing.csv", file_name="missing.csv", carrier=carrier, file_source="upload"
        )

    class BrokenStream(io.RawIOBase):
        """Hands out one chunk, then fails like a dropped connection."""

        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 1:
                raise ConnectionResetError(104, "Connection reset by peer")
            return b"x" * 1000

    with pytest.raises(SourceUnreadable, match="Connection reset by peer"):
        register_file(engine, store, BrokenStream(), file_name="cut.csv", carrier=carrier, file_source="sftp")
    assert _rows(engine) == []
    assert _blobs(tmp_path / "raw") == []  # not even a partial temporary object


def test_an_unwritable_raw_store_blames_the_store_not_the_file(engine, carrier, tmp_path):
    in_the_way = tmp_path / "disk"
    in_the_way.write_bytes(b"a regular file where the store's directory should be")  # works as root too
    broken = RawStore((in_the_way / "raw").as_uri())
    src = tmp_path / "ok.csv"
    src.write_bytes(PAYLOAD)

    with pytest.raises(RawStoreUnavailable) as caught:
        register_file(engine, broken, src, file_name="ok.csv", carrier=carrier, file_source="upload")

    message = str(caught.value)
    assert message.startswith(f"raw store {broken.base_url} is unavailable: cannot create its tmp directory: ")
    assert "Not a directory" in message and "ok.csv" not in message and "\n" not in message
    assert _rows(engine) == []


def test_an_unknown_carrier_is_refused_before_anything_is_stored(engine, store, carrier, tmp_path):
    with pytest.raises(UnknownCarrier, match="unknown carrier 'nope'; known carriers: acme"):
        register_file(engine, store, io.BytesIO(PAYLOAD), file_name="x.csv", carrier="nope", file_source="upload")
    assert _rows(engine) == [] and _blobs(tmp_path / "raw") == []


def test_status_moves_follow_the_state_machine(engine, store, carrier):
    reg = register_file(engine, store, io.BytesIO(PAYLOAD), file_name="a.csv", carrier=carrier, file_source="upload")
    dup = register_file(engine, store, io.BytesIO(PAYLOAD), file_name="b.csv", carrier=carrier, file_source="upload")
    with engine.begin() as conn:
        with pytest.raises(IllegalTransition, match="a received file cannot become loaded"):
            set_status(conn, reg.file_id, "loaded", "skipping processing")
    with engine.begin() as conn:
        with pytest.raises(IllegalTransition, match="a duplicate file cannot become processing"):
            set_status(conn, dup.file_id, "processing", "load it anyway")
    with engine.begin() as conn:
        assert set_status(conn, reg.file_id, "processing", "claimed by worker 1") == 2
        assert set_status(conn, reg.file_id, "loaded", "100 calls", lines=100, processed=True) == 3
    (row,) = _rows(engine, "SELECT * FROM cdr_files WHERE id = :i", i=reg.file_id)
    assert row["status"] == "loaded" and row["lines"] == 100 and row["file_processed_stamp"] is not None
    log_lines = row["processing_log"].splitlines()
    assert [line.split(" ", 1)[1] for line in log_lines[1:]] == [
        "status processing: claimed by worker 1",
        "status loaded: 100 calls",
    ]
    with engine.begin() as conn:
        with pytest.raises(IllegalTransition, match="a loaded file cannot become failed"):
            set_status(conn, reg.file_id, "failed", "too late")


def test_the_processing_log_cannot_be_overwritten(engine, store, carrier):
    reg = register_file(engine, store, io.BytesIO(PAYLOAD), file_name="a.csv", carrier=carrier, file_source="upload")
    with pytest.raises(IntegrityError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("UPDATE cdr_files SET processing_log = 'rewritten' WHERE id = :i"), {"i": reg.file_id})
    with engine.begin() as conn:
        registry.append_log(conn, reg.file_id, "operator note: re-sent by carrier")
    (row,) = _rows(engine)
    assert row["processing_log"].endswith("operator note: re-sent by carrier\n")
    assert row["revision_number"] == 2


def test_two_workers_claiming_the_same_file_one_wins(engine, store, carrier):
    reg = register_file(engine, store, io.BytesIO(PAYLOAD), file_name="a.csv", carrier=carrier, file_source="upload")
    outcome: dict[str, object] = {}
    first = engine.connect()
    first.begin()
    set_status(first, reg.file_id, "processing", "worker 1")  # holds the row lock

    def second_worker():
        with engine.begin() as conn:
            try:
                set_status(conn, reg.file_id, "processing", "worker 2")
                outcome["second"] = "claimed"
            except IllegalTransition as exc:
                outcome["second"] = str(exc)

    thread = threading.Thread(target=second_worker)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting on worker 1's row lock
    first.commit()
    first.close()
    thread.join(10)
    assert (
        outcome["second"] == "a processing file cannot become processing; allowed from processing: "
        "failed, loaded, received, rejected"
    )
