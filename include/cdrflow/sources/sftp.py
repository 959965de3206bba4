"""Collect CDR files from a carrier's SFTP server (see :mod:`cdrflow.sources.remote`).

The connection is an Airflow connection of type ``sftp`` (host, port, login, password or a key
in the extras ``key_file`` / ``private_key``; host key pinned with ``host_key`` or, on a trusted
network only, skipped with ``no_host_key_check``), opened by the sftp provider's
:class:`SFTPHook`, which hands out a paramiko ``SFTPClient``.
"""

from __future__ import annotations

import posixpath
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import BinaryIO
from urllib.parse import quote

from paramiko import SFTPClient, SSHException
from sqlalchemy import Engine

from cdrflow.config.carrier_file import RemoteDirSource
from cdrflow.config.errors import ConfigurationError
from cdrflow.intake.rawstore import RawStore
from cdrflow.sources import remote
from cdrflow.sources.base import Collected

CONNECT_TIMEOUT = 30  # seconds to connect and get the banner, unless the extra conn_timeout says otherwise
IO_TIMEOUT = 120.0  # seconds without an answer from the server mid-session
CONNECTION_ERRORS = (SSHException, EOFError, OSError)


class SftpClient:
    """:class:`cdrflow.sources.remote.RemoteClient` over a paramiko ``SFTPClient``."""

    def __init__(self, sftp: SFTPClient, host: str, port: int):
        self._sftp = sftp
        self._base = f"sftp://{host}:{port}"
        self._home = sftp.normalize(".")  # relative directories are relative to this

    @contextmanager
    def _file_errors(self, what: str, path: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            # paramiko reports SFTP status codes (no such file, permission denied, failure) as
            # OSError; a dead transport or a timeout is the connection's problem, not the file's.
            transport = self._sftp.get_channel().get_transport()
            if isinstance(exc, (ConnectionError, TimeoutError)) or not transport.is_active():
                raise
            raise remote.RemoteFileError(f"cannot {what} {path}: {exc.strerror or exc}") from exc

    def list_files(self, directory: str) -> dict[str, int]:
        with self._file_errors("list", directory):
            return {
                a.filename: a.st_size
                for a in self._sftp.listdir_attr(directory)
                if a.st_mode is not None and stat.S_ISREG(a.st_mode)
            }

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        with self._file_errors("open", path):
            handle = self._sftp.open(path, "rb")
        with handle:
            # Read-ahead requests keep the link busy; memory stays bounded by the SSH channel
            # window (about 2 MB), since the server cannot send more than the window allows.
            handle.prefetch(max_concurrent_requests=64)
            yield handle

    def delete(self, path: str) -> None:
        with self._file_errors("delete", path):
            self._sftp.remove(path)

    def rename(self, source: str, target: str) -> None:
        with self._file_errors("move", source):
            self._sftp.rename(source, target)

    def exists(self, path: str) -> bool:
        with self._file_errors("look up", path):
            try:
                self._sftp.stat(path)
                return True
            except FileNotFoundError:
                return False

    def makedirs(self, path: str) -> None:
        absolute = posixpath.join(self._home, path)
        parts = [p for p in absolute.split("/") if p]
        for i in range(1, len(parts) + 1):
            current = "/" + "/".join(parts[:i])
            if not self.exists(current):
                with self._file_errors("create directory", current):
                    self._sftp.mkdir(current)

    def uri(self, path: str) -> str:
        return self._base + quote(posixpath.normpath(posixpath.join(self._home, path)))


@contextmanager
def connect(source: RemoteDirSource) -> Iterator[SftpClient]:
    """An :class:`SftpClient` on the server of ``source.conn_id``, closed on exit. Failing to
    connect or log in, or losing the connection, raises :class:`SourceUnavailable`."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    try:
        # One attempt: the hook's own retries (3, 3-5 s apart) would repeat a bad password
        # against the carrier's server; retrying is the Airflow task's job.
        hook = SFTPHook(ssh_conn_id=source.conn_id, conn_retry_attempts=1)
    except AirflowNotFoundException:
        raise ConfigurationError(f"no Airflow connection {source.conn_id!r} (sftp)") from None
    if hook.conn_timeout is None:
        hook.conn_timeout = CONNECT_TIMEOUT
    # A server that accepts but never greets is as unreachable as one that never accepts.
    hook.banner_timeout = min(hook.banner_timeout, hook.conn_timeout)
    where = f"sftp connection {source.conn_id!r} ({hook.remote_host}:{hook.port})"
    with ExitStack() as stack:
        with remote.unavailable_on(CONNECTION_ERRORS, where, "cannot connect"):  # refused, timeout, auth, bad key
            sftp = stack.enter_context(hook.get_managed_conn())
        with remote.unavailable_on(CONNECTION_ERRORS, where, "connection lost"):
            sftp.get_channel().settimeout(IO_TIMEOUT)
            yield SftpClient(sftp, hook.remote_host, hook.port or 22)


def run(
    engine: Engine,
    store: RawStore,
    carrier: str,
    source: RemoteDirSource,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Collected]:
    """Collect ``carrier``'s files from its SFTP ``source``."""
    with connect(source) as client:
        return remote.collect(engine, store, carrier, source, client, sleep=sleep)
