"""Real FTP and FTPS servers on loopback (pyftpdlib) for the FTP collector's tests.

``ftp_server`` serves plain FTP; ``ftps_server`` serves explicit FTPS (``AUTH TLS``) and requires
TLS on the control *and* the data connections (so a client that forgot ``PROT P`` fails), with a
certificate for 127.0.0.1 signed by a throwaway CA generated for the test (``ca_file`` in
the connection extra is how a client trusts it). Each test gets its own server, in a thread of
the test process, on a free high port of 127.0.0.1, with one user whose home is a fresh
temporary directory (``root``). A server that cannot start FAILS the test with the reason; the
server and its connections are closed at teardown.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

USER = "cdrflowtest"
PASSWORD = "ftp-test-secret-1"


@dataclass(frozen=True)
class FtpServer:
    host: str
    port: int
    user: str
    password: str
    root: Path  # the user's home on the server, as a local path
    tls: bool
    ca_file: Path | None = None  # PEM of the CA that signed the server certificate (ftps)

    def airflow_conn_json(self, **overrides: Any) -> str:
        """JSON for ``AIRFLOW_CONN_<ID>`` (conn_type ftp, or ftps with ``ca_file`` in the extra).
        Keyword arguments replace fields, e.g. ``password="wrong"``, ``extra={}``."""
        conn: dict[str, Any] = {
            "conn_type": "ftps" if self.tls else "ftp",
            "host": self.host,
            "port": self.port,
            "login": self.user,
            "password": self.password,
            "extra": {"timeout": 10},
        }
        if self.tls:
            conn["extra"]["ca_file"] = str(self.ca_file)
        conn.update(overrides)
        return json.dumps(conn)


def _certificates(directory: Path) -> tuple[Path, Path]:
    """A CA certificate and a server certificate+key (one PEM) for 127.0.0.1 / localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cdrflow test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, server_file = directory / "ca.pem", directory / "server.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_file.write_bytes(
        server.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, server_file


@contextmanager
def _serve(root: Path, certificate: Path | None) -> Iterator[int]:
    try:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
        from pyftpdlib.servers import FTPServer
    except ImportError as exc:
        pytest.fail(f"pyftpdlib (and pyOpenSSL for FTPS) are needed for the FTP tests: {exc}")
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
    attributes: dict[str, Any] = {"authorizer": authorizer, "auth_failed_timeout": 0.1}  # 3 s by default
    if certificate is not None:
        attributes.update(
            certfile=str(certificate), keyfile=None, ssl_context=None, tls_control_required=True, tls_data_required=True
        )
    handler = type("TestHandler", (TLS_FTPHandler if certificate else FTPHandler,), attributes)
    try:
        if certificate is not None:
            handler.get_ssl_context()  # a bad certificate fails here, not at the first client
        server = FTPServer(("127.0.0.1", 0), handler)
    except Exception as exc:
        pytest.fail(f"cannot start the {'FTPS' if certificate else 'FTP'} test server: {exc!r}")
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=loop, name="test-ftpd", daemon=True)
    thread.start()
    try:
        yield server.address[1]
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[FtpServer]:
    """A plain FTP server on 127.0.0.1 (see the module docstring)."""
    root = tmp_path / "ftp-root"
    root.mkdir()
    with _serve(root, None) as port:
        yield FtpServer(host="127.0.0.1", port=port, user=USER, password=PASSWORD, root=root, tls=False)


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[FtpServer]:
    """An explicit-FTPS server on 127.0.0.1, TLS required on control and data connections."""
    ca_file, certificate = _certificates(tmp_path)
    root = tmp_path / "ftps-root"
    root.mkdir()
    with _serve(root, certificate) as port:
        yield FtpServer(host="127.0.0.1", port=port, user=USER, password=PASSWORD, root=root, tls=True, ca_file=ca_file)
