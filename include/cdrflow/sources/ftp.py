"""Collect CDR files from a carrier's FTP or FTPS server (see :mod:`cdrflow.sources.remote`).

The Airflow connection (looked up through the ftp provider's hook, so any secrets backend works)
has conn_type ``ftp`` for plain FTP or ``ftps`` for explicit TLS (``AUTH TLS``, then ``PROT P``:
file bytes travel encrypted too); the Airflow UI offers only the ``ftp`` type, so ``ftp`` with
the extra ``"tls": true`` means FTPS as well. Extras: ``passive`` (default true) and ``encoding``, as the
provider reads them; ``timeout`` (seconds, default 60); for ftps ``ca_file``, a PEM file of the
certificate authority (or the self-signed certificate) to trust besides the system ones, and
``verify`` (default true; false accepts any certificate, for a lab only).

Why ftplib under the hook rather than ``FTPHook.get_conn()`` / ``FTPSHook.get_conn()``
(apache-airflow-providers-ftp 3.16): the hooks create their clients without a timeout, so a
server that accepts and then says nothing hangs the task forever; ``FTPSHook`` verifies the
certificate against the system store only, with no extra to trust a carrier's private CA or
self-signed certificate, sets the port on the ``ftplib.FTP_TLS`` class (process-wide), and does
not resume the TLS session on data connections, which vsftpd (``require_ssl_reuse``, its
default), ProFTPD and FileZilla Server demand. The hooks' file methods push data into a callback
(``retrbinary``); we pull it from the data connection instead (below).
"""

from __future__ import annotations

import ftplib  # nosec B402: plain FTP only where the carrier offers nothing else
import io
import logging
import posixpath
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import quote

from sqlalchemy import Engine

from cdrflow.config.carrier_file import RemoteDirSource
from cdrflow.config.errors import ConfigurationError
from cdrflow.intake.rawstore import RawStore
from cdrflow.sources import remote
from cdrflow.sources.base import Collected

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0


class _FTP_TLS(ftplib.FTP_TLS):
    """Explicit FTPS whose data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]  # FTP_TLS's own flag, set by prot_p()
            control = self.sock
            assert isinstance(control, ssl.SSLSocket), "AUTH TLS wrapped the control connection"
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=control.session)
        return conn, size


class _RetrStream(io.RawIOBase):
    """The data connection of one ``RETR``, read as the consumer asks for bytes.

    Chosen over ``retrbinary`` (which pushes into a callback) fed through a thread and a queue,
    or a SpooledTemporaryFile: the socket is the stream, TCP flow control keeps memory flat
    without a thread or a local copy. At end of data the server's final reply is checked, so a
    transfer the server reports as failed ends in an error, never in a short file registered.
    """

    def __init__(self, ftp: ftplib.FTP, conn: socket.socket, path: str):
        self._ftp, self._conn, self._path, self._open = ftp, conn, path, True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._open:
            return 0
        n = self._conn.recv_into(buffer)
        if n == 0:
            self._end()
        return n

    def _end(self) -> None:
        self._open = False
        if isinstance(self._conn, ssl.SSLSocket):
            try:
                self._conn.unwrap()
            except (OSError, ValueError):  # the server closed without a TLS goodbye
                pass
        self._conn.close()
        try:
            self._ftp.voidresp()
        except ftplib.Error as exc:
            raise OSError(f"transfer of {self._path} failed: {exc}") from exc

    def close(self) -> None:
        if self._open:  # abandoned before the end: drop the data connection, eat the 426/226
            self._open = False
            self._conn.close()
            try:
                self._ftp.getresp()
            except ftplib.Error:
                pass
        super().close()


class FtpClient:
    """:class:`cdrflow.sources.remote.RemoteClient` over an ``ftplib.FTP`` (or FTP_TLS)."""

    def __init__(self, ftp: ftplib.FTP, scheme: str, host: str, port: int):
        self._ftp = ftp
        self._base = f"{scheme}://{host}:{port}"
        self._home = ftp.pwd()  # relative directories are relative to this

    @contextmanager
    def _file_errors(self, what: str, path: str) -> Iterator[None]:
        try:
            yield
        except (ftplib.error_perm, ftplib.error_temp) as exc:
            if str(exc).startswith("421"):  # service closing: the connection is gone
                raise
            raise remote.RemoteFileError(f"cannot {what} {path}: {exc}") from exc

    def list_files(self, directory: str) -> dict[str, int]:
        with self._file_errors("list", directory):
            try:
                return {
                    posixpath.basename(name): int(facts["size"])
                    for name, facts in self._ftp.mlsd(directory, facts=["type", "size"])
                    if facts.get("type") == "file" and "size" in facts
                }
            except ftplib.error_perm as exc:
                if str(exc)[:3] not in ("500", "501", "502"):
                    raise
            # No MLSD (vsftpd, older servers): names, then SIZE, which only files answer.
            found = {}
            for name in map(posixpath.basename, self._ftp.nlst(directory)):
                try:
                    found[name] = self._size(posixpath.join(directory, name))
                except ftplib.error_perm:
                    pass  # a directory
            return found

    def _size(self, path: str) -> int:
        self._ftp.voidcmd("TYPE I")  # some servers refuse SIZE in ASCII mode
        size = self._ftp.size(path)
        if size is None:
            raise ftplib.error_reply(f"550 no size for {path}")
        return int(size)

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        self._ftp.voidcmd("TYPE I")
        with self._file_errors("open", path):
            conn = self._ftp.transfercmd(f"RETR {path}")
        with io.BufferedReader(_RetrStream(self._ftp, conn, path), 1 << 16) as stream:
            yield stream

    def delete(self, path: str) -> None:
        with self._file_errors("delete", path):
            self._ftp.delete(path)

    def rename(self, source: str, target: str) -> None:
        with self._file_errors("move", source):
            self._ftp.rename(source, target)

    def exists(self, path: str) -> bool:
        try:
            self._size(path)
            return True
        except ftplib.error_perm:
            return False

    def makedirs(self, path: str) -> None:
        absolute = posixpath.join(self._home, path)
        parts = [p for p in absolute.split("/") if p]
        for i in range(1, len(parts) + 1):
            try:
                self._ftp.mkd("/" + "/".join(parts[:i]))
            except ftplib.error_perm:
                pass  # exists already; any other problem shows when files are moved there

    def uri(self, path: str) -> str:
        return self._base + quote(posixpath.normpath(posixpath.join(self._home, path)))


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() not in ("false", "0", "no", "off")


def _login(conn: Any, tls: bool) -> ftplib.FTP:
    extra = conn.extra_dejson
    options: dict[str, Any] = {"timeout": float(extra.get("timeout") or DEFAULT_TIMEOUT)}
    if extra.get("encoding"):
        options["encoding"] = extra["encoding"]
    if tls:
        context = ssl.create_default_context(cafile=extra.get("ca_file"))
        if not _flag(extra.get("verify"), True):
            log.warning("ftps connection %s: certificate NOT verified (extra verify=false)", conn.conn_id)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        ftp: ftplib.FTP = _FTP_TLS(context=context, **options)
    else:
        ftp = ftplib.FTP(**options)  # nosec B321
    try:
        ftp.connect(conn.host, conn.port or ftplib.FTP_PORT)
        ftp.login(conn.login or "anonymous", conn.password or "")  # FTP_TLS: AUTH TLS first
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()
        ftp.set_pasv(_flag(extra.get("passive"), True))
    except BaseException:
        ftp.close()
        raise
    return ftp


@contextmanager
def connect(source: RemoteDirSource) -> Iterator[FtpClient]:
    """An :class:`FtpClient` on the server of ``source.conn_id``, closed on exit. Failing to
    connect or log in, or losing the connection, raises :class:`SourceUnavailable`."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException
    from airflow.providers.ftp.hooks.ftp import FTPHook

    try:
        conn = FTPHook.get_connection(source.conn_id)
    except AirflowNotFoundException:
        raise ConfigurationError(f"no Airflow connection {source.conn_id!r} (ftp/ftps)") from None
    tls = conn.conn_type == "ftps" or _flag(conn.extra_dejson.get("tls"), False)
    port = conn.port or ftplib.FTP_PORT
    where = f"{conn.conn_type} connection {source.conn_id!r} ({conn.host}:{port})"
    with remote.unavailable_on(ftplib.all_errors, where, "cannot connect"):  # refused, timeout, TLS, bad login
        ftp = _login(conn, tls)
    try:
        with remote.unavailable_on(ftplib.all_errors, where, "connection lost"):
            yield FtpClient(ftp, "ftps" if tls else "ftp", conn.host or "", port)
    finally:
        try:
            ftp.quit()
        except ftplib.all_errors:
            ftp.close()


def run(
    engine: Engine,
    store: RawStore,
    carrier: str,
    source: RemoteDirSource,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Collected]:
    """Collect ``carrier``'s files from its FTP or FTPS ``source``."""
    with connect(source) as client:
        return remote.collect(engine, store, carrier, source, client, sleep=sleep)
