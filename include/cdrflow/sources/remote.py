"""Collect files from directories on a remote server: the algorithm SFTP and FTP(S) share.

:func:`collect` is written against :class:`RemoteClient`, a handful of file operations that
:mod:`cdrflow.sources.sftp` and :mod:`cdrflow.sources.ftp` implement over their protocol. One run:

1. list every configured directory (regular files only, with sizes) and keep the names that
   match ``patterns`` (done markers themselves never count as files);
2. with ``done_marker`` (e.g. ``".done"``) take ``NAME`` only when ``NAME.done`` is beside it;
3. with ``settle_seconds`` > 0, sleep once (for all directories together) and list again: a file
   whose size changed or that vanished is still being written and is left for the next run;
4. stream each file into :func:`cdrflow.sources.base.collect_one` (raw store, SHA1 registry);
5. only once a file is registered, apply ``after``: ``delete`` it, ``move`` it to ``move_to``
   (created when missing), or ``keep`` it. The done marker follows its file.

With ``after: keep`` the files stay on the server, so every run downloads them again and they
come back as outcome ``duplicate`` (a ``cdr_files`` row with status duplicate, nothing loaded):
the SHA1 registry, not the server, remembers what was taken. That is accepted behaviour for
carriers who do not let us delete; it costs a download per file per run.

Errors: a problem with one file (vanished between listing and download, permission denied,
transfer failed) is logged and reported as a skipped file; the others go on. A directory that
cannot be listed does not stop the other directories, but the run ends with
:class:`~cdrflow.config.errors.SourceUnavailable` naming it. Connection-level failures are raised by the
client as they happen and turned into :class:`~cdrflow.config.errors.SourceUnavailable` by its
``connect()``, through :func:`unavailable_on`.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol

from sqlalchemy import Engine

from cdrflow.config.carrier_file import RemoteDirSource
from cdrflow.config.errors import CdrflowError, SourceUnavailable, SourceUnreadable, one_line
from cdrflow.intake.names import clean_name
from cdrflow.intake.rawstore import RawStore
from cdrflow.sources.base import Collected, collect_one, matches, skipped

log = logging.getLogger(__name__)


class RemoteFileError(CdrflowError):
    """One remote file or directory could not be listed, read, moved or deleted; the
    connection itself is fine."""


@contextmanager
def unavailable_on(
    errors: type[BaseException] | tuple[type[BaseException], ...], where: str, what: str
) -> Iterator[None]:
    """Raise the protocol's connection-level ``errors`` (refused, timed out, login refused,
    connection lost) as :class:`SourceUnavailable` ``"{where}: {what}: {reason}"``, the reason
    on one line and never empty."""
    try:
        yield
    except errors as exc:
        raise SourceUnavailable(f"{where}: {what}: {one_line(exc)}") from exc


class RemoteClient(Protocol):
    """What :func:`collect` needs from a server. File-level failures raise
    :class:`RemoteFileError`; connection-level failures raise whatever the protocol raises."""

    def list_files(self, directory: str) -> dict[str, int]:
        """Regular files of ``directory``: name -> size in bytes."""

    def open_read(self, path: str) -> AbstractContextManager[BinaryIO]:
        """The file's bytes as a binary stream, read from the server as they are consumed."""

    def delete(self, path: str) -> None: ...

    def rename(self, source: str, target: str) -> None: ...

    def exists(self, path: str) -> bool:
        """Whether a file exists at ``path``."""

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its missing parents."""

    def uri(self, path: str) -> str:
        """``scheme://host:port/absolute/path``, never with credentials."""


def _list(client: RemoteClient, directory: str, failures: dict[str, str]) -> dict[str, int] | None:
    try:
        return client.list_files(directory)
    except RemoteFileError as exc:
        failures[directory] = str(exc)
        log.error("cannot list %s: %s", directory, exc)
        return None


def _candidates(listing: dict[str, int], source: RemoteDirSource) -> list[str]:
    marker = source.done_marker
    return sorted(n for n in listing if not (marker and n.endswith(marker)) and matches(n, source.patterns))


def _marked(name: str, listing: dict[str, int], source: RemoteDirSource) -> bool:
    """Whether ``name`` may be taken as far as the done-marker convention goes."""
    return not source.done_marker or name + source.done_marker in listing


def _unused_name(client: RemoteClient, target: str) -> str:
    """``target``, or ``target.<UTC stamp>`` when a file of that name was moved there before."""
    if not client.exists(target):
        return target
    return f"{target}.{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"


def _after(client: RemoteClient, source: RemoteDirSource, directory: str, name: str, created: set[str]) -> None:
    path = posixpath.join(directory, name)
    paths = [path] + ([path + source.done_marker] if source.done_marker else [])
    if source.after == "delete":
        for p in paths:
            client.delete(p)
    elif source.after == "move":
        move_to = source.move_to
        assert move_to, "the carrier file's schema requires move_to with after: move"
        if move_to not in created:
            client.makedirs(move_to)
            created.add(move_to)
        for p in paths:
            client.rename(p, _unused_name(client, posixpath.join(move_to, posixpath.basename(p))))


def collect(
    engine: Engine,
    store: RawStore,
    carrier: str,
    source: RemoteDirSource,
    client: RemoteClient,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Collected]:
    """Collect the files of ``source`` through ``client``; one :class:`Collected` per file seen."""
    failures: dict[str, str] = {}
    listings = {d: found for d in source.directories if (found := _list(client, d, failures)) is not None}
    settled: dict[str, dict[str, int] | None] = {}
    if source.settle_seconds > 0 and any(
        _marked(n, found, source) for found in listings.values() for n in _candidates(found, source)
    ):
        sleep(source.settle_seconds)  # once per run, for every directory
        settled = {d: _list(client, d, failures) for d in listings}

    results: list[Collected] = []
    created: set[str] = set()
    for directory, listing in listings.items():
        again = settled.get(directory, listing)
        if again is None:  # the directory could not be listed the second time
            continue
        for name in _candidates(listing, source):
            path = posixpath.join(directory, name)
            uri = client.uri(path)
            seen: dict[str, Any] = {
                "kind": source.kind,
                "carrier": carrier,
                "name": clean_name(name),
                "size": listing[name],
                "source_uri": uri,
            }
            if not _marked(name, listing, source):
                results.append(skipped(**seen, reason="no done marker yet"))
                continue
            if again.get(name) != listing[name]:
                results.append(skipped(**seen, reason="still being written"))
                continue
            try:
                with client.open_read(path) as stream:
                    done = collect_one(
                        engine, store, stream, kind=source.kind, carrier=carrier, name=seen["name"], source_uri=uri
                    )
            except (RemoteFileError, SourceUnreadable) as exc:
                log.warning("%s: cannot download: %s", uri, exc)
                results.append(skipped(**seen, reason=f"cannot download: {exc}"))
                continue
            results.append(done)
            try:
                _after(client, source, directory, name, created)
            except RemoteFileError as exc:
                # Registered all the same: left on the server, it comes back as a duplicate.
                log.warning("%s: registered, but could not %s it: %s", uri, source.after, exc)
    if failures:
        raise SourceUnavailable(
            f"{source.kind} connection {source.conn_id!r}: cannot list "
            + "; ".join(f"{d} ({why})" for d, why in failures.items())
        )
    return results
