"""The SFTP collector against a real OpenSSH server on loopback (tests/servers/sshd.py)."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from cdrflow.carrier_config import RemoteDirSource
from cdrflow.errors import ConfigurationError, SourceUnavailable
from cdrflow.generate import asterisk_bytes
from cdrflow.sources import sftp
from servers.sshd import SftpServer, free_port, sftp_server  # noqa: F401

CONN = "carrier_sftp"


@pytest.fixture
def server(sftp_server: SftpServer, monkeypatch) -> SftpServer:  # noqa: F811
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_SFTP", sftp_server.airflow_conn_json())
    (sftp_server.root / "out").mkdir()
    return sftp_server


def source(**overrides) -> RemoteDirSource:
    return RemoteDirSource(**{"kind": "sftp", "conn_id": CONN, "directories": ("out",),
                              "settle_seconds": 0, **overrides})


def put(server: SftpServer, name: str, seed: int, directory: str = "out") -> bytes:
    data = asterisk_bytes(5, seed=seed)
    (server.root / directory / name).write_bytes(data)
    return data


def rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT id, file_name, file_source, source_uri, status, duplicate_of, original_hash, file_size "
            "FROM cdr_files ORDER BY id")).mappings()]


def stored(store, sha1: str) -> bytes:
    return store.path_for(store.key_for(sha1)).read_bytes()


def test_two_files_are_registered_with_their_bytes_and_uri(server, engine, store, carrier):
    a, b = put(server, "a.csv", 1), put(server, "b.csv", 2)

    found = sftp.run(engine, store, carrier, source())

    assert [(c.name, c.outcome) for c in found] == [("a.csv", "received"), ("b.csv", "received")]
    registered = rows(engine)
    assert [(r["file_name"], r["file_source"], r["status"]) for r in registered] == [
        ("a.csv", "sftp", "received"), ("b.csv", "sftp", "received")]
    assert registered[0]["source_uri"] == f"sftp://127.0.0.1:{server.port}{server.root}/out/a.csv"
    assert server.password not in registered[0]["source_uri"]
    assert stored(store, registered[0]["original_hash"]) == a
    assert stored(store, registered[1]["original_hash"]) == b
    assert sorted(p.name for p in (server.root / "out").iterdir()) == ["a.csv", "b.csv"]  # after=keep


def test_after_move_moves_files_into_a_new_folder(server, engine, store, carrier):
    put(server, "a.csv", 1)
    put(server, "b.csv", 2)

    found = sftp.run(engine, store, carrier, source(after="move", move_to="done/2026"))

    assert [c.outcome for c in found] == ["received", "received"]
    assert list((server.root / "out").iterdir()) == []
    assert sorted(p.name for p in (server.root / "done" / "2026").iterdir()) == ["a.csv", "b.csv"]


def test_after_move_keeps_an_earlier_file_of_the_same_name(server, engine, store, carrier):
    put(server, "daily.csv", 1)
    sftp.run(engine, store, carrier, source(after="move", move_to="done"))
    put(server, "daily.csv", 2)
    sftp.run(engine, store, carrier, source(after="move", move_to="done"))

    moved = sorted(p.name for p in (server.root / "done").iterdir())
    assert moved[0] == "daily.csv" and moved[1].startswith("daily.csv.") and len(moved) == 2
    assert [r["status"] for r in rows(engine)] == ["received", "received"]


def test_after_delete_deletes_them(server, engine, store, carrier):
    put(server, "a.csv", 1)
    put(server, "b.csv", 2)

    sftp.run(engine, store, carrier, source(after="delete"))

    assert list((server.root / "out").iterdir()) == []
    assert len(rows(engine)) == 2


def test_after_keep_files_come_back_as_duplicates_only(server, engine, store, carrier):
    put(server, "a.csv", 1)
    put(server, "b.csv", 2)
    sftp.run(engine, store, carrier, source())

    again = sftp.run(engine, store, carrier, source())

    assert [c.outcome for c in again] == ["duplicate", "duplicate"]
    registered = rows(engine)
    assert sum(r["duplicate_of"] is None for r in registered) == 2  # no new originals
    assert [r["status"] for r in registered[2:]] == ["duplicate", "duplicate"]
    assert sorted(p.name for p in (server.root / "out").iterdir()) == ["a.csv", "b.csv"]


def test_only_files_matching_the_patterns_are_taken(server, engine, store, carrier):
    put(server, "a.csv", 1)
    put(server, "B.CSV", 2)
    put(server, "readme.txt", 3)
    (server.root / "out" / "sub.csv").mkdir()  # a directory, even when its name matches

    found = sftp.run(engine, store, carrier, source(patterns=("*.csv",), after="delete"))

    assert sorted(c.name for c in found) == ["B.CSV", "a.csv"]
    assert sorted(p.name for p in (server.root / "out").iterdir()) == ["readme.txt", "sub.csv"]


def test_a_file_still_being_written_waits_for_the_next_run(server, engine, store, carrier):
    put(server, "stable.csv", 1)
    growing = server.root / "out" / "growing.csv"
    growing.write_bytes(asterisk_bytes(3, seed=2))
    sleeps = []

    def writer_keeps_writing(seconds: float) -> None:  # the carrier appends during the settle time
        sleeps.append(seconds)
        with open(growing, "ab") as f:
            f.write(asterisk_bytes(3, seed=3))

    first = sftp.run(engine, store, carrier, source(settle_seconds=0.3), sleep=writer_keeps_writing)

    assert sleeps == [0.3]  # one settle sleep for the whole run
    outcome = {c.name: (c.outcome, c.reason) for c in first}
    assert outcome == {"growing.csv": ("skipped", "still being written"), "stable.csv": ("received", "")}
    assert [r["file_name"] for r in rows(engine)] == ["stable.csv"]

    second = sftp.run(engine, store, carrier, source(settle_seconds=0.3))

    assert {c.name: c.outcome for c in second} == {"growing.csv": "received", "stable.csv": "duplicate"}
    complete = [r for r in rows(engine) if r["file_name"] == "growing.csv"]
    assert stored(store, complete[0]["original_hash"]) == growing.read_bytes()


def test_done_marker_convention(server, engine, store, carrier):
    put(server, "a.csv", 1)
    (server.root / "out" / "a.csv.done").write_bytes(b"")
    put(server, "b.csv", 2)  # no marker yet

    found = sftp.run(engine, store, carrier, source(done_marker=".done", after="move", move_to="archive"))

    assert {c.name: (c.outcome, c.reason) for c in found} == {
        "a.csv": ("received", ""), "b.csv": ("skipped", "no done marker yet")}
    assert [r["file_name"] for r in rows(engine)] == ["a.csv"]  # the marker itself is never a file
    assert sorted(p.name for p in (server.root / "archive").iterdir()) == ["a.csv", "a.csv.done"]
    assert sorted(p.name for p in (server.root / "out").iterdir()) == ["b.csv"]


def test_one_unreadable_file_does_not_stop_the_others(server, engine, store, carrier):
    put(server, "a.csv", 1)
    put(server, "b.csv", 2)
    (server.root / "out" / "a.csv").chmod(0)  # the SFTP user may not read it

    found = sftp.run(engine, store, carrier, source(after="delete"))

    assert [(c.name, c.outcome) for c in found] == [("a.csv", "skipped"), ("b.csv", "received")]
    assert "Permission denied" in found[0].reason
    assert [r["file_name"] for r in rows(engine)] == ["b.csv"]
    assert sorted(p.name for p in (server.root / "out").iterdir()) == ["a.csv"]


def test_a_missing_directory_fails_the_run_after_the_others(server, engine, store, carrier):
    put(server, "a.csv", 1)

    with pytest.raises(SourceUnavailable, match=r"cannot list missing \(cannot list missing: No such file"):
        sftp.run(engine, store, carrier, source(directories=("out", "missing")))

    assert [r["file_name"] for r in rows(engine)] == ["a.csv"]


def _peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_20_mb_file_is_streamed(server, engine, store, carrier):
    put(server, "warm-up.csv", 1)
    sftp.run(engine, store, carrier, source(after="delete"))  # first-use imports and caches
    big = server.root / "out" / "big.csv"
    block, digest = asterisk_bytes(2000, seed=7), hashlib.sha1()
    with open(big, "wb") as f:
        while f.tell() < 20 << 20:
            f.write(block)
            digest.update(block)
    size = big.stat().st_size

    Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak RSS
    before = _rss_kib()
    found = sftp.run(engine, store, carrier, source(after="delete"))
    growth_mib = (_peak_kib() - before) / 1024

    assert [(c.name, c.outcome, c.size, c.sha1) for c in found] == [("big.csv", "received", size, digest.hexdigest())]
    assert hashlib.sha1(stored(store, found[0].sha1)).hexdigest() == digest.hexdigest()
    assert growth_mib < 10, f"peak memory grew by {growth_mib:.1f} MiB for a {size >> 20} MiB file"


def test_key_authentication(server, engine, store, carrier, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_SFTP", server.airflow_conn_json(
        password=None, extra={"key_file": str(server.key_file), "no_host_key_check": True}))
    put(server, "a.csv", 1)

    assert [c.outcome for c in sftp.run(engine, store, carrier, source())] == ["received"]


def test_connection_refused_is_source_unavailable(server, engine, store, carrier, monkeypatch):
    closed = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_SFTP", server.airflow_conn_json(port=closed))
    put(server, "a.csv", 1)

    with pytest.raises(SourceUnavailable) as failure:
        sftp.run(engine, store, carrier, source())

    message = str(failure.value)
    assert f"'{CONN}'" in message and f"127.0.0.1:{closed}" in message and "cannot connect" in message
    assert "\n" not in message and server.password not in message
    assert rows(engine) == []


def test_wrong_password_is_source_unavailable(server, engine, store, carrier, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_SFTP", server.airflow_conn_json(password="not-the-password"))
    put(server, "a.csv", 1)

    with pytest.raises(SourceUnavailable, match="Authentication failed") as failure:
        sftp.run(engine, store, carrier, source())

    assert f"127.0.0.1:{server.port}" in str(failure.value) and "not-the-password" not in str(failure.value)
    assert rows(engine) == []
    assert os.path.exists(server.root / "out" / "a.csv")


def test_a_server_that_never_answers_times_out(server, engine, store, carrier, monkeypatch):
    with socket.socket() as silent:  # accepts connections (kernel backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        monkeypatch.setenv("AIRFLOW_CONN_CARRIER_SFTP", server.airflow_conn_json(
            port=port, extra={"no_host_key_check": True, "look_for_keys": False, "conn_timeout": 1}))
        started = time.monotonic()

        with pytest.raises(SourceUnavailable, match=f"127.0.0.1:{port}.*cannot connect"):
            sftp.run(engine, store, carrier, source())

    assert time.monotonic() - started < 10


def test_an_undefined_connection_is_a_configuration_error(engine, store, carrier):
    with pytest.raises(ConfigurationError, match="no Airflow connection 'nobody_defined_this'"):
        sftp.run(engine, store, carrier, source(conn_id="nobody_defined_this"))
