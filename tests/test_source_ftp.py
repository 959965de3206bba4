"""The FTP/FTPS collector against real pyftpdlib servers on loopback (tests/servers/ftpd.py)."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from cdrflow.carrier_config import RemoteDirSource
from cdrflow.errors import ConfigurationError, SourceUnavailable
from cdrflow.generate import asterisk_bytes
from cdrflow.sources import ftp
from servers.ftpd import FtpServer, ftp_server, ftps_server  # noqa: F401
from servers.sshd import free_port

CONN = "carrier_ftp"


def _use(server: FtpServer, monkeypatch) -> FtpServer:
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_FTP", server.airflow_conn_json())
    (server.root / "out").mkdir()
    return server


@pytest.fixture(params=["ftp", "ftps"])
def any_server(request, monkeypatch) -> FtpServer:
    """Plain FTP, then explicit FTPS (TLS required on control and data connections)."""
    return _use(request.getfixturevalue(f"{request.param}_server"), monkeypatch)


@pytest.fixture
def server(ftp_server: FtpServer, monkeypatch) -> FtpServer:  # noqa: F811
    return _use(ftp_server, monkeypatch)


def source(**overrides) -> RemoteDirSource:
    return RemoteDirSource(**{"kind": "ftp", "conn_id": CONN, "directories": ("out",),
                              "settle_seconds": 0, **overrides})


def put(server: FtpServer, name: str, seed: int, directory: str = "out") -> bytes:
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


def test_two_files_are_registered_with_their_bytes_and_uri(any_server, engine, store, carrier):
    a, b = put(any_server, "a.csv", 1), put(any_server, "b.csv", 2)

    found = ftp.run(engine, store, carrier, source())

    assert [(c.name, c.outcome) for c in found] == [("a.csv", "received"), ("b.csv", "received")]
    registered = rows(engine)
    assert [(r["file_name"], r["file_source"], r["status"]) for r in registered] == [
        ("a.csv", "ftp", "received"), ("b.csv", "ftp", "received")]
    scheme = "ftps" if any_server.tls else "ftp"
    assert registered[0]["source_uri"] == f"{scheme}://127.0.0.1:{any_server.port}/out/a.csv"
    assert stored(store, registered[0]["original_hash"]) == a
    assert stored(store, registered[1]["original_hash"]) == b
    assert sorted(p.name for p in (any_server.root / "out").iterdir()) == ["a.csv", "b.csv"]  # after=keep


def test_after_move_moves_files_into_a_new_folder(any_server, engine, store, carrier):
    put(any_server, "a.csv", 1)
    put(any_server, "b.csv", 2)

    found = ftp.run(engine, store, carrier, source(after="move", move_to="/done/2026"))

    assert [c.outcome for c in found] == ["received", "received"]
    assert list((any_server.root / "out").iterdir()) == []
    assert sorted(p.name for p in (any_server.root / "done" / "2026").iterdir()) == ["a.csv", "b.csv"]


def test_after_delete_deletes_them(server, engine, store, carrier):
    put(server, "a.csv", 1)
    put(server, "b.csv", 2)

    ftp.run(engine, store, carrier, source(after="delete"))

    assert list((server.root / "out").iterdir()) == []
    assert len(rows(engine)) == 2


def test_after_keep_files_come_back_as_duplicates_only(server, engine, store, carrier):
    put(server, "a.csv", 1)
    put(server, "b.csv", 2)
    ftp.run(engine, store, carrier, source())

    again = ftp.run(engine, store, carrier, source())

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

    found = ftp.run(engine, store, carrier, source(patterns=("*.csv",), after="delete"))

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

    first = ftp.run(engine, store, carrier, source(settle_seconds=0.3), sleep=writer_keeps_writing)

    assert sleeps == [0.3]  # one settle sleep for the whole run
    assert {c.name: (c.outcome, c.reason) for c in first} == {
        "growing.csv": ("skipped", "still being written"), "stable.csv": ("received", "")}
    assert [r["file_name"] for r in rows(engine)] == ["stable.csv"]

    second = ftp.run(engine, store, carrier, source(settle_seconds=0.3))

    assert {c.name: c.outcome for c in second} == {"growing.csv": "received", "stable.csv": "duplicate"}
    complete = [r for r in rows(engine) if r["file_name"] == "growing.csv"]
    assert stored(store, complete[0]["original_hash"]) == growing.read_bytes()


def test_done_marker_convention(server, engine, store, carrier):
    put(server, "a.csv", 1)
    (server.root / "out" / "a.csv.done").write_bytes(b"")
    put(server, "b.csv", 2)  # no marker yet

    found = ftp.run(engine, store, carrier, source(done_marker=".done", after="delete"))

    assert {c.name: (c.outcome, c.reason) for c in found} == {
        "a.csv": ("received", ""), "b.csv": ("skipped", "no done marker yet")}
    assert [r["file_name"] for r in rows(engine)] == ["a.csv"]  # the marker itself is never a file
    assert sorted(p.name for p in (server.root / "out").iterdir()) == ["b.csv"]  # marker deleted too


def test_a_file_that_vanishes_before_download_does_not_stop_the_others(server, engine, store, carrier):
    put(server, "a.csv", 1)
    put(server, "b.csv", 2)
    real_open = ftp.FtpClient.open_read

    def carrier_removes_a_first(self, path):  # the server-side delete happens between list and RETR
        (server.root / "out" / "a.csv").unlink(missing_ok=True)
        return real_open(self, path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ftp.FtpClient, "open_read", carrier_removes_a_first)
        found = ftp.run(engine, store, carrier, source())

    assert [(c.name, c.outcome) for c in found] == [("a.csv", "skipped"), ("b.csv", "received")]
    assert found[0].reason.startswith("cannot download: cannot open out/a.csv: 550")
    assert [r["file_name"] for r in rows(engine)] == ["b.csv"]


def test_a_missing_directory_fails_the_run_after_the_others(server, engine, store, carrier):
    put(server, "a.csv", 1)

    with pytest.raises(SourceUnavailable, match=r"cannot list missing \(cannot list missing: 550"):
        ftp.run(engine, store, carrier, source(directories=("out", "missing")))

    assert [r["file_name"] for r in rows(engine)] == ["a.csv"]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


def test_a_20_mb_file_is_streamed(any_server, engine, store, carrier):
    put(any_server, "warm-up.csv", 1)
    ftp.run(engine, store, carrier, source(after="delete"))  # first-use imports and caches
    big = any_server.root / "out" / "big.csv"
    block, digest = asterisk_bytes(2000, seed=7), hashlib.sha1()
    with open(big, "wb") as f:
        while f.tell() < 20 << 20:
            f.write(block)
            digest.update(block)
    size = big.stat().st_size

    Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak RSS
    before = _status_kib("VmRSS")
    found = ftp.run(engine, store, carrier, source(after="delete"))
    growth_mib = (_status_kib("VmHWM") - before) / 1024  # the server thread's buffers included

    assert [(c.name, c.outcome, c.size, c.sha1) for c in found] == [("big.csv", "received", size, digest.hexdigest())]
    assert hashlib.sha1(stored(store, found[0].sha1)).hexdigest() == digest.hexdigest()
    assert growth_mib < 10, f"peak memory grew by {growth_mib:.1f} MiB for a {size >> 20} MiB file"


def test_ftps_refuses_a_certificate_it_cannot_verify(ftps_server, engine, store, carrier, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_FTP", ftps_server.airflow_conn_json(extra={"timeout": 10}))

    with pytest.raises(SourceUnavailable, match="certificate verify failed"):
        ftp.run(engine, store, carrier, source(directories=(".",)))


def test_ftps_as_an_ftp_connection_with_the_tls_extra(ftps_server, engine, store, carrier, monkeypatch):  # noqa: F811
    """The Airflow UI has no ftps connection type: ftp + {"tls": true} is FTPS too."""
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_FTP", ftps_server.airflow_conn_json(
        conn_type="ftp", extra={"tls": True, "ca_file": str(ftps_server.ca_file)}))
    put(ftps_server, "a.csv", 1, directory=".")

    found = ftp.run(engine, store, carrier, source(directories=(".",)))

    assert [(c.outcome, c.source_uri) for c in found] == [("received", f"ftps://127.0.0.1:{ftps_server.port}/a.csv")]


def test_plain_ftp_against_a_tls_only_server_is_refused(ftps_server, engine, store, carrier, monkeypatch):  # noqa: F811
    plain = ftps_server.airflow_conn_json(conn_type="ftp")
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_FTP", plain)

    with pytest.raises(SourceUnavailable, match="cannot connect.*SSL/TLS required"):
        ftp.run(engine, store, carrier, source(directories=(".",)))


def test_connection_refused_is_source_unavailable(server, engine, store, carrier, monkeypatch):
    closed = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_FTP", server.airflow_conn_json(port=closed))
    put(server, "a.csv", 1)

    with pytest.raises(SourceUnavailable) as failure:
        ftp.run(engine, store, carrier, source())

    message = str(failure.value)
    assert f"'{CONN}'" in message and f"127.0.0.1:{closed}" in message and "refused" in message
    assert "\n" not in message and server.password not in message
    assert rows(engine) == []


def test_wrong_password_is_source_unavailable(any_server, engine, store, carrier, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_FTP", any_server.airflow_conn_json(password="not-the-password"))
    put(any_server, "a.csv", 1)

    with pytest.raises(SourceUnavailable, match="cannot connect: 530") as failure:
        ftp.run(engine, store, carrier, source())

    assert f"127.0.0.1:{any_server.port}" in str(failure.value)
    assert "not-the-password" not in str(failure.value)
    assert rows(engine) == []


def test_a_server_that_never_answers_times_out(server, engine, store, carrier, monkeypatch):
    with socket.socket() as silent:  # accepts connections (kernel backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        monkeypatch.setenv("AIRFLOW_CONN_CARRIER_FTP", server.airflow_conn_json(port=port, extra={"timeout": 1}))
        started = time.monotonic()

        with pytest.raises(SourceUnavailable, match=f"127.0.0.1:{port}.*cannot connect: timed out"):
            ftp.run(engine, store, carrier, source())

    assert time.monotonic() - started < 10


def test_an_undefined_connection_is_a_configuration_error(engine, store, carrier):
    with pytest.raises(ConfigurationError, match="no Airflow connection 'nobody_defined_this'"):
        ftp.run(engine, store, carrier, source(conn_id="nobody_defined_this"))
