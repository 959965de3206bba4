"""What only the FTP/FTPS collector has, against real pyftpdlib servers on loopback (tests/servers/ftpd.py).

The remote-directory behaviour it shares with SFTP is tested, on FTP and FTPS too, in test_source_remote.py.
"""

from __future__ import annotations

import pytest

from cdrflow.config.errors import SourceUnavailable
from cdrflow.sources import ftp
from registry_rows import rows
from servers.ftpd import ftp_server, ftps_server
from servers.remote import FTP, FTPS, remote_on

ftp_remote, ftps_remote = remote_on(FTP), remote_on(FTPS)


def test_a_file_that_vanishes_before_download_does_not_stop_the_others(ftp_remote, engine, store, carrier):
    ftp_remote.put("a.csv", 1)
    ftp_remote.put("b.csv", 2)
    real_open = ftp.FtpClient.open_read

    def carrier_removes_a_first(self, path):  # the server-side delete happens between list and RETR
        (ftp_remote.server.root / "out" / "a.csv").unlink(missing_ok=True)
        return real_open(self, path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ftp.FtpClient, "open_read", carrier_removes_a_first)
        found = ftp_remote.run(engine, store, carrier)

    assert [(c.name, c.outcome) for c in found] == [("a.csv", "skipped"), ("b.csv", "received")]
    assert found[0].reason.startswith("cannot download: cannot open out/a.csv: 550")
    assert [r["file_name"] for r in rows(engine)] == ["b.csv"]


def test_ftps_refuses_a_certificate_it_cannot_verify(ftps_remote, engine, store, carrier, monkeypatch):
    ftps_remote.set_connection(monkeypatch, extra={"timeout": 10})  # no ca_file: the test CA is unknown

    with pytest.raises(SourceUnavailable, match="certificate verify failed"):
        ftps_remote.run(engine, store, carrier, directories=(".",))


def test_ftps_as_an_ftp_connection_with_the_tls_extra(ftps_remote, engine, store, carrier, monkeypatch):
    """The Airflow UI has no ftps connection type: ftp + {"tls": true} is FTPS too."""
    ftps_remote.set_connection(
        monkeypatch, conn_type="ftp", extra={"tls": True, "ca_file": str(ftps_remote.server.ca_file)}
    )
    ftps_remote.put("a.csv", 1, directory=".")

    found = ftps_remote.run(engine, store, carrier, directories=(".",))

    assert [(c.outcome, c.source_uri) for c in found] == [
        ("received", f"ftps://127.0.0.1:{ftps_remote.server.port}/a.csv")
    ]


def test_plain_ftp_against_a_tls_only_server_is_refused(ftps_remote, engine, store, carrier, monkeypatch):
    ftps_remote.set_connection(monkeypatch, conn_type="ftp")

    with pytest.raises(SourceUnavailable, match="cannot connect.*SSL/TLS required"):
        ftps_remote.run(engine, store, carrier, directories=(".",))
