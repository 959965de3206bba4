"""The remote-directory algorithm (:mod:`cdrflow.sources.remote`) over every protocol that uses it:
SFTP against a real OpenSSH server (tests/servers/sshd.py), plain FTP and explicit FTPS against
real pyftpdlib servers (tests/servers/ftpd.py). Each test runs once per protocol.

What only one protocol has (key login, certificates, ...) is tested in test_source_sftp.py and
test_source_ftp.py.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest

from cdrflow.config.carrier_file import RemoteDirSource
from cdrflow.config.errors import ConfigurationError, RawStoreUnavailable, SourceUnavailable
from cdrflow.dev.generate import asterisk_bytes
from cdrflow.intake.rawstore import RawStore
from registry_rows import rows, stored
from servers.ftpd import ftp_server, ftps_server
from servers.remote import FTP, FTPS, SFTP, Protocol, Remote
from servers.sshd import free_port, sftp_server


@pytest.fixture(params=[SFTP, FTP, FTPS], ids=lambda p: p.scheme)
def protocol(request) -> Protocol:
    return request.param


@pytest.fixture
def remote(protocol: Protocol, request, monkeypatch) -> Remote:
    return Remote.set_up(protocol, request, monkeypatch)


def test_two_files_are_registered_with_their_bytes_and_uri(remote, engine, store, carrier):
    a, b = remote.put("a.csv", 1), remote.put("b.csv", 2)

    found = remote.run(engine, store, carrier)

    assert [(c.name, c.outcome) for c in found] == [("a.csv", "received"), ("b.csv", "received")]
    registered = rows(engine)
    kind = remote.protocol.kind
    assert [(r["file_name"], r["file_source"], r["status"]) for r in registered] == [
        ("a.csv", kind, "received"),
        ("b.csv", kind, "received"),
    ]
    assert registered[0]["source_uri"] == remote.uri("out/a.csv")
    assert remote.server.password not in registered[0]["source_uri"]
    assert stored(store, registered[0]) == a
    assert stored(store, registered[1]) == b
    assert remote.names("out") == ["a.csv", "b.csv"]  # after=keep


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_after_move_moves_files_into_a_new_folder(remote, engine, store, carrier, absolute):
    remote.put("a.csv", 1)
    remote.put("b.csv", 2)
    move_to = f"{remote.home}/done/2026" if absolute else "done/2026"

    found = remote.run(engine, store, carrier, after="move", move_to=move_to)

    assert [c.outcome for c in found] == ["received", "received"]
    assert remote.names("out") == []
    assert remote.names("done/2026") == ["a.csv", "b.csv"]


def test_after_move_keeps_an_earlier_file_of_the_same_name(remote, engine, store, carrier):
    remote.put("daily.csv", 1)
    remote.run(engine, store, carrier, after="move", move_to="done")
    remote.put("daily.csv", 2)
    remote.run(engine, store, carrier, after="move", move_to="done")

    moved = remote.names("done")
    assert moved[0] == "daily.csv" and moved[1].startswith("daily.csv.") and len(moved) == 2
    assert [r["status"] for r in rows(engine)] == ["received", "received"]


def test_after_delete_deletes_them(remote, engine, store, carrier):
    remote.put("a.csv", 1)
    remote.put("b.csv", 2)

    remote.run(engine, store, carrier, after="delete")

    assert remote.names("out") == []
    assert len(rows(engine)) == 2


def test_after_keep_files_come_back_as_duplicates_only(remote, engine, store, carrier):
    remote.put("a.csv", 1)
    remote.put("b.csv", 2)
    remote.run(engine, store, carrier)

    again = remote.run(engine, store, carrier)

    assert [c.outcome for c in again] == ["duplicate", "duplicate"]
    registered = rows(engine)
    assert sum(r["duplicate_of"] is None for r in registered) == 2  # no new originals
    assert [r["status"] for r in registered[2:]] == ["duplicate", "duplicate"]
    assert remote.names("out") == ["a.csv", "b.csv"]


def test_only_files_matching_the_patterns_are_taken(remote, engine, store, carrier):
    remote.put("a.csv", 1)
    remote.put("B.CSV", 2)
    remote.put("readme.txt", 3)
    (remote.server.root / "out" / "sub.csv").mkdir()  # a directory, even when its name matches

    found = remote.run(engine, store, carrier, patterns=("*.csv",), after="delete")

    assert sorted(c.name for c in found) == ["B.CSV", "a.csv"]
    assert remote.names("out") == ["readme.txt", "sub.csv"]


def test_a_file_still_being_written_waits_for_the_next_run(remote, engine, store, carrier):
    remote.put("stable.csv", 1)
    growing = remote.server.root / "out" / "growing.csv"
    growing.write_bytes(asterisk_bytes(3, seed=2))
    sleeps = []

    def writer_keeps_writing(seconds: float) -> None:  # the carrier appends during the settle time
        sleeps.append(seconds)
        with open(growing, "ab") as f:
            f.write(asterisk_bytes(3, seed=3))

    first = remote.run(engine, store, carrier, settle_seconds=0.3, sleep=writer_keeps_writing)

    assert sleeps == [0.3]  # one settle sleep for the whole run
    assert {c.name: (c.outcome, c.reason) for c in first} == {
        "growing.csv": ("skipped", "still being written"),
        "stable.csv": ("received", ""),
    }
    assert [r["file_name"] for r in rows(engine)] == ["stable.csv"]

    second = remote.run(engine, store, carrier, settle_seconds=0.3)

    assert {c.name: c.outcome for c in second} == {"growing.csv": "received", "stable.csv": "duplicate"}
    complete = [r for r in rows(engine) if r["file_name"] == "growing.csv"]
    assert stored(store, complete[0]) == growing.read_bytes()


@pytest.mark.parametrize("after", ["move", "delete"])
def test_done_marker_convention(remote, engine, store, carrier, after):
    remote.put("a.csv", 1)
    (remote.server.root / "out" / "a.csv.done").write_bytes(b"")
    remote.put("b.csv", 2)  # no marker yet

    found = remote.run(engine, store, carrier, done_marker=".done", after=after, move_to="archive")

    assert {c.name: (c.outcome, c.reason) for c in found} == {
        "a.csv": ("received", ""),
        "b.csv": ("skipped", "no done marker yet"),
    }
    assert [r["file_name"] for r in rows(engine)] == ["a.csv"]  # the marker itself is never a file
    assert remote.names("out") == ["b.csv"]  # the marker follows its file
    if after == "move":
        assert remote.names("archive") == ["a.csv", "a.csv.done"]


def test_a_missing_directory_fails_the_run_after_the_others(remote, engine, store, carrier):
    remote.put("a.csv", 1)

    with pytest.raises(
        SourceUnavailable, match=rf"cannot list missing \(cannot list missing: {remote.protocol.not_found}"
    ):
        remote.run(engine, store, carrier, directories=("out", "missing"))

    assert [r["file_name"] for r in rows(engine)] == ["a.csv"]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


def test_a_20_mb_file_is_streamed(remote, engine, store, carrier):
    remote.put("warm-up.csv", 1)
    remote.run(engine, store, carrier, after="delete")  # first-use imports and caches
    big = remote.server.root / "out" / "big.csv"
    block, digest = asterisk_bytes(2000, seed=7), hashlib.sha1()
    with open(big, "wb") as f:
        while f.tell() < 20 << 20:
            f.write(block)
            digest.update(block)
    size = big.stat().st_size

    Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak RSS
    before = _status_kib("VmRSS")
    found = remote.run(engine, store, carrier, after="delete")
    growth_mib = (_status_kib("VmHWM") - before) / 1024  # an FTP server thread's buffers included

    assert [(c.name, c.outcome, c.size, c.sha1) for c in found] == [("big.csv", "received", size, digest.hexdigest())]
    [registered] = [r for r in rows(engine) if r["id"] == found[0].file_id]
    assert hashlib.sha1(stored(store, registered)).hexdigest() == digest.hexdigest()
    assert growth_mib < 10, f"peak memory grew by {growth_mib:.1f} MiB for a {size >> 20} MiB file"


def test_an_unwritable_raw_store_stops_the_run_and_keeps_the_remote_files(remote, engine, carrier, tmp_path):
    in_the_way = tmp_path / "disk"
    in_the_way.write_bytes(b"a regular file where the store's directory should be")
    broken = RawStore((in_the_way / "raw").as_uri())
    remote.put("a.csv", 1)

    with pytest.raises(RawStoreUnavailable, match=r"^raw store file://\S+/disk/raw is unavailable: .*Not a directory"):
        remote.run(engine, broken, carrier, after="delete")

    assert rows(engine) == []
    assert remote.names("out") == ["a.csv"]  # not deleted: nothing was registered


def test_connection_refused_is_source_unavailable(remote, engine, store, carrier, monkeypatch):
    closed = free_port()
    remote.set_connection(monkeypatch, port=closed)
    remote.put("a.csv", 1)

    with pytest.raises(SourceUnavailable) as failure:
        remote.run(engine, store, carrier)

    message = str(failure.value)
    assert f"'{remote.protocol.conn_id}'" in message and f"127.0.0.1:{closed}" in message
    assert "cannot connect" in message and remote.protocol.refused in message
    assert "\n" not in message and remote.server.password not in message
    assert rows(engine) == []


def test_wrong_password_is_source_unavailable(remote, engine, store, carrier, monkeypatch):
    remote.set_connection(monkeypatch, password="not-the-password")
    remote.put("a.csv", 1)

    with pytest.raises(SourceUnavailable) as failure:
        remote.run(engine, store, carrier)

    message = str(failure.value)
    assert remote.protocol.bad_login in message and f"127.0.0.1:{remote.server.port}" in message
    assert "not-the-password" not in message
    assert rows(engine) == []
    assert os.path.exists(remote.server.root / "out" / "a.csv")


def test_a_server_that_never_answers_times_out(remote, engine, store, carrier, monkeypatch):
    with socket.socket() as silent:  # accepts connections (kernel backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        remote.set_connection(monkeypatch, port=port, extra=remote.protocol.silent_extra)
        started = time.monotonic()

        with pytest.raises(SourceUnavailable, match=f"127.0.0.1:{port}.*cannot connect: {remote.protocol.timed_out}"):
            remote.run(engine, store, carrier)

    assert time.monotonic() - started < 10


def test_an_undefined_connection_is_a_configuration_error(protocol, engine, store, carrier):
    source = RemoteDirSource(kind=protocol.kind, conn_id="nobody_defined_this", directories=("out",))

    with pytest.raises(ConfigurationError, match="no Airflow connection 'nobody_defined_this'"):
        protocol.collector.run(engine, store, carrier, source)
