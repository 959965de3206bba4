"""What only the SFTP collector has, against a real OpenSSH server on loopback (tests/servers/sshd.py).

The remote-directory behaviour it shares with FTP and FTPS is tested, on SFTP too, in test_source_remote.py.
"""

from __future__ import annotations

from registry_rows import rows
from servers.remote import SFTP, remote_on
from servers.sshd import sftp_server

remote = remote_on(SFTP)


def test_one_unreadable_file_does_not_stop_the_others(remote, engine, store, carrier):
    remote.put("a.csv", 1)
    remote.put("b.csv", 2)
    (remote.server.root / "out" / "a.csv").chmod(0)  # the SFTP user may not read it

    found = remote.run(engine, store, carrier, after="delete")

    assert [(c.name, c.outcome) for c in found] == [("a.csv", "skipped"), ("b.csv", "received")]
    assert "Permission denied" in found[0].reason
    assert [r["file_name"] for r in rows(engine)] == ["b.csv"]
    assert remote.names("out") == ["a.csv"]


def test_key_authentication(remote, engine, store, carrier, monkeypatch):
    remote.set_connection(
        monkeypatch, password=None, extra={"key_file": str(remote.server.key_file), "no_host_key_check": True}
    )
    remote.put("a.csv", 1)

    assert [c.outcome for c in remote.run(engine, store, carrier)] == ["received"]
