"""A processing batch survives its files: one file that breaks fails alone, a file whose stored
bytes are gone ends failed with the reason, a bad archive never stays processing, and the claims
are released whatever happened (issue 9, items 1, 3, 4)."""

from __future__ import annotations

import gzip
import io
import zipfile

import pandas as pd
import pytest
from sqlalchemy import text

from cdrflow.cli.main import main
from cdrflow.config.errors import RawStoreUnavailable
from cdrflow.dev import generate
from cdrflow.intake import archives, claims
from cdrflow.intake.registry import register_file
from cdrflow.loading import batches, small_files


def _register(engine, store, data: bytes, name: str) -> int:
    return register_file(engine, store, io.BytesIO(data), file_name=name, carrier="acme", file_source="upload").file_id


def _files(engine) -> dict[int, tuple[str, str]]:
    with engine.connect() as conn:
        return {r.id: (r.status, r.processing_log) for r in conn.execute(text("SELECT * FROM cdr_files"))}


def _claims(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(text("SELECT file_id, run_id FROM file_claims")).all()


def _out_of_bounds_for(monkeypatch, bad: int) -> None:
    """The fault the probe found: pandas refusing a 9999-12-31 time while a group is prepared."""
    real = small_files.prepare

    def prepare(datas, carriers, file_ids, *args, **kwargs):
        if bad in file_ids:
            raise pd.errors.OutOfBoundsDatetime("Out of bounds nanosecond timestamp: 9999-12-31 23:59:00")
        return real(datas, carriers, file_ids, *args, **kwargs)

    monkeypatch.setattr(small_files, "prepare", prepare)


def test_a_file_that_breaks_its_group_fails_alone_and_the_next_run_takes_it(
    engine, store, carrier, warehouse_url, monkeypatch, capsys
):
    ids = [_register(engine, store, generate.asterisk_bytes(20, seed=500 + i), f"f{i}.csv") for i in range(6)]
    bad = ids[3]
    _out_of_bounds_for(monkeypatch, bad)
    monkeypatch.setenv("CDRFLOW_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("CDRFLOW_RAW_STORE", store.base_url)

    assert main(["process"]) == 1  # as `cdrflow process` runs it: one file did not end loaded
    out, err = capsys.readouterr()
    assert "6 file(s) processed: 5 loaded, 1 error" in out
    assert f"error: file {bad}: OutOfBoundsDatetime: Out of bounds nanosecond timestamp" in err
    files = _files(engine)
    assert [files[i][0] for i in ids] == ["loaded"] * 3 + ["received"] + ["loaded"] * 2
    assert "processing attempt 1 of 3 failed, left received for the next run: OutOfBoundsDatetime" in files[bad][1]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 5 * 20
    assert _claims(engine) == []  # nothing hidden from the next run

    assert main(["process"]) == 1
    assert "1 file(s) processed: 1 error" in capsys.readouterr().out  # the next run took it again
    monkeypatch.undo()
    assert [c.id for c in claims.claim(engine, "after-the-fix")] == [bad]


def test_a_file_that_keeps_breaking_is_failed_after_three_attempts(engine, store, carrier, monkeypatch):
    (bad,) = [_register(engine, store, generate.asterisk_bytes(5, seed=9), "bad.csv")]
    _out_of_bounds_for(monkeypatch, bad)
    for attempt in (1, 2, 3):
        outcome = batches.process_batch(engine, store, [c.id for c in claims.claim(engine, f"run{attempt}")])
        assert [r.status for r in outcome.results] == ([] if attempt < 3 else ["failed"])
    status, log = _files(engine)[bad]
    assert status == "failed" and "gave up after 3 attempts: OutOfBoundsDatetime" in log
    assert claims.requeue(engine, [bad], "fixed") == [bad]  # an operator's re-run starts counting anew


def test_an_outage_of_the_raw_store_never_fails_a_file(engine, store, carrier, monkeypatch):
    """The store away while a file is read is not the file's fault: however many runs meet it,
    the file stays received (no attempt counted) and loads once the store is back."""
    (victim,) = [_register(engine, store, generate.asterisk_bytes(5, seed=11), "victim.csv")]
    real = small_files.prepare

    def store_away(datas, carriers, file_ids, *args, **kwargs):
        raise RawStoreUnavailable("raw store s3://cdr-raw is unavailable: cannot read: EndpointConnectionError")

    monkeypatch.setattr(small_files, "prepare", store_away)
    for attempt in range(1, 5):
        outcome = batches.process_batch(engine, store, [c.id for c in claims.claim(engine, f"out{attempt}")])
        assert outcome.results == [] and list(outcome.errors) == [victim]
    status, log = _files(engine)[victim]
    assert status == "received" and "processing attempt" not in log
    assert log.count("the warehouse or the raw store was unavailable") == 4
    monkeypatch.setattr(small_files, "prepare", real)
    outcome = batches.process_batch(engine, store, [c.id for c in claims.claim(engine, "back")])
    assert [r.status for r in outcome.results] == ["loaded"]


def test_an_exception_anywhere_in_a_batch_releases_its_claims(engine, store, carrier, monkeypatch):
    ids = [_register(engine, store, generate.asterisk_bytes(5, seed=40 + i), f"g{i}.csv") for i in range(3)]
    assert [c.id for c in claims.claim(engine, "run-a")] == ids

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # not an Exception: it stops the batch, the claims still go

    monkeypatch.setattr(small_files, "prepare", broken)
    with pytest.raises(KeyboardInterrupt):
        batches.process_batch(engine, store, ids, run_id="run-a")
    assert _claims(engine) == []
    assert {s for s, _ in _files(engine).values()} == {"received"}


@pytest.mark.parametrize("size", ["small", "big"])
def test_a_deleted_raw_object_fails_its_file_with_the_reason_and_the_batch_goes_on(
    engine, store, carrier, monkeypatch, size
):
    if size == "big":
        monkeypatch.setattr(batches, "SMALL_FILE_BYTES", 0)  # every file streamed on its own
    ids = [_register(engine, store, generate.asterisk_bytes(10, seed=70 + i), f"h{i}.csv") for i in range(3)]
    with engine.connect() as conn:
        key = conn.execute(text("SELECT stored_file_id FROM cdr_files WHERE id = :i"), {"i": ids[1]}).scalar()
    store.path_for(key).unlink()
    outcome = batches.process_batch(engine, store, [c.id for c in claims.claim(engine, "r")], run_id="r")
    assert not outcome.errors
    assert sorted((r.file_id, r.status) for r in outcome.results) == [
        (ids[0], "loaded"),
        (ids[1], "failed"),
        (ids[2], "loaded"),
    ]
    status, log = _files(engine)[ids[1]]
    assert status == "failed" and f"stored bytes missing: {key}" in log
    assert _claims(engine) == []


def _corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(generate.asterisk_bytes(200, seed=5)))
    data[40:60] = b"\xff" * 20  # valid header, broken deflate stream
    return bytes(data)


def _encrypted_looking_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a.csv", generate.asterisk_bytes(3, seed=6))
    data = bytearray(buffer.getvalue())
    data[6] |= 0x01  # the local header's "encrypted" flag
    central = data.rindex(b"PK\x01\x02")
    data[central + 8] |= 0x01  # and the central directory's
    return bytes(data)


@pytest.mark.parametrize("make", [_corrupt_gzip, _encrypted_looking_zip], ids=["corrupt-gzip", "encrypted-zip"])
def test_a_bad_archive_ends_rejected_with_the_reason(engine, store, carrier, make):
    archive = _register(engine, store, make(), "day.gz" if make is _corrupt_gzip else "day.zip")
    plain = _register(engine, store, generate.asterisk_bytes(4, seed=8), "plain.csv")
    outcome = batches.process_batch(engine, store, [c.id for c in claims.claim(engine, "r")], run_id="r")
    assert not outcome.errors
    assert {(r.file_id, r.status) for r in outcome.results} == {(archive, "rejected"), (plain, "loaded")}
    status, log = _files(engine)[archive]
    assert status == "rejected" and "archive not unpacked:" in log
    assert _claims(engine) == []


def test_an_archive_whose_worker_dies_midway_is_left_received_not_processing(engine, store, carrier, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for n in range(3):
            zf.writestr(f"m{n}.csv", generate.asterisk_bytes(3, seed=20 + n))
    archive = _register(engine, store, buffer.getvalue(), "day.zip")
    real = archives.register_file
    seen = []

    def dies_on_the_second(*args, **kwargs):
        seen.append(kwargs["file_name"])
        if len(seen) == 2:
            raise SystemExit("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(archives, "register_file", dies_on_the_second)
    with pytest.raises(SystemExit):
        archives.unpack(engine, store, archive)
    assert _files(engine)[archive][0] == "received"
    monkeypatch.undo()
    assert batches.process_file(engine, store, archive).status == "loaded"  # the next run unpacks it
    files = _files(engine)
    # m0, registered before the worker died, is a received file of its own (the next run loads
    # it); the second unpacking found it again as a duplicate of that one
    assert sorted(s for i, (s, _) in files.items() if i != archive) == ["duplicate", "loaded", "loaded", "received"]
    (m0,) = [i for i, (s, _) in files.items() if s == "received"]
    assert [c.id for c in claims.claim(engine, "next")] == [m0]
