"""One protocol's test server, seen the way the remote-directory tests use it: which collector
and source kind go with it, how it reports failures, and a :class:`Remote` wrapper that places
files and points the Airflow connection at the server. Shared by test_source_remote.py (every
protocol) and test_source_sftp.py / test_source_ftp.py (one protocol each)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import pytest

from cdrflow.config.carrier_file import RemoteDirSource
from cdrflow.dev.generate import asterisk_bytes
from cdrflow.sources import ftp, sftp
from cdrflow.sources.base import Collected
from servers.ftpd import FtpServer
from servers.sshd import SftpServer


@dataclass(frozen=True)
class Protocol:
    """What differs between the protocols, as far as these tests go."""

    scheme: str  # test id, and the scheme of the files' source_uri
    collector: ModuleType  # cdrflow.sources.sftp or cdrflow.sources.ftp
    kind: str  # the RemoteDirSource kind, also the registry's file_source
    server_fixture: str  # the only server started: ftp_server and ftps_server in one test break pyftpdlib
    home_is_served_dir: bool  # sessions start in the served directory's real path, not in "/"
    not_found: str  # how a missing directory is reported
    refused: str  # how a closed port is reported
    bad_login: str  # how a wrong password is reported
    silent_extra: dict[str, Any]  # the connection extra that gives up on a silent server after 1 s
    timed_out: str  # how a silent server is reported ("" for SFTP: paramiko says "No existing session")

    @property
    def conn_id(self) -> str:
        return f"carrier_{self.kind}"

    @property
    def conn_env(self) -> str:
        return f"AIRFLOW_CONN_{self.conn_id.upper()}"


SFTP = Protocol(
    scheme="sftp",
    collector=sftp,
    kind="sftp",
    server_fixture="sftp_server",
    home_is_served_dir=True,
    not_found="No such file",
    refused="Unable to connect to port",
    bad_login="cannot connect: AuthenticationException: Authentication failed",
    timed_out="",
    silent_extra={"no_host_key_check": True, "look_for_keys": False, "conn_timeout": 1},
)
FTP = Protocol(
    scheme="ftp",
    collector=ftp,
    kind="ftp",
    server_fixture="ftp_server",
    home_is_served_dir=False,
    not_found="550",
    refused="Connection refused",
    bad_login="cannot connect: error_perm: 530",
    timed_out="TimeoutError: timed out",
    silent_extra={"timeout": 1},
)
FTPS = replace(FTP, scheme="ftps", server_fixture="ftps_server")  # explicit TLS on control and data connections


@dataclass(frozen=True)
class Remote:
    """A running server of one protocol with an ``out`` directory, and the Airflow connection
    ``protocol.conn_id`` pointing at it; what the tests do with it. test_source_sftp.py and
    test_source_ftp.py use it too, through :func:`remote_on`."""

    protocol: Protocol
    server: SftpServer | FtpServer

    @classmethod
    def set_up(cls, protocol: Protocol, request, monkeypatch) -> Remote:
        """Start ``protocol``'s server (through the fixture ``request`` can see) and set it up."""
        remote = cls(protocol, request.getfixturevalue(protocol.server_fixture))
        remote.set_connection(monkeypatch)
        (remote.server.root / "out").mkdir()
        return remote

    def set_connection(self, monkeypatch, **overrides: Any) -> None:
        """Point the Airflow connection at the server, with fields replaced, e.g. ``password="wrong"``."""
        monkeypatch.setenv(self.protocol.conn_env, self.server.airflow_conn_json(**overrides))

    @property
    def home(self) -> str:
        """The absolute remote path of the served directory."""
        return str(self.server.root) if self.protocol.home_is_served_dir else ""

    def source(self, **overrides: Any) -> RemoteDirSource:
        return RemoteDirSource(
            **{
                "kind": self.protocol.kind,
                "conn_id": self.protocol.conn_id,
                "directories": ("out",),
                "settle_seconds": 0,
                **overrides,
            }
        )

    def run(self, engine, store, carrier: str, sleep=time.sleep, **overrides: Any) -> list[Collected]:
        return self.protocol.collector.run(engine, store, carrier, self.source(**overrides), sleep=sleep)

    def put(self, name: str, seed: int, directory: str = "out") -> bytes:
        data = asterisk_bytes(5, seed=seed)
        (self.server.root / directory / name).write_bytes(data)
        return data

    def names(self, directory: str) -> list[str]:
        return sorted(p.name for p in (self.server.root / directory).iterdir())

    def uri(self, path: str) -> str:
        return f"{self.protocol.scheme}://127.0.0.1:{self.server.port}{self.home}/{path}"


def remote_on(protocol: Protocol):
    """A fixture: a :class:`Remote` on ``protocol`` alone (its server fixture must be imported
    where this one is used)."""

    @pytest.fixture
    def fixture(request, monkeypatch) -> Remote:
        """A :class:`Remote` on one protocol (see :func:`remote_on`)."""
        return Remote.set_up(protocol, request, monkeypatch)

    return fixture
