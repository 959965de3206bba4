"""Fresh data: a file dropped into an upload bucket or drop folder starts the bucket collector
within seconds, not at its next one-minute tick, and no worker slot waits for it.

The asset ``cdrflow_bucket_files`` has an :class:`~airflow.sdk.AssetWatcher` (event-driven
scheduling, Airflow 3): the **triggerer** runs :class:`NewFilesTrigger`, which lists every
``kind: bucket`` source of the carrier file every ``CDRFLOW_WATCH_SECONDS`` (default 5; ``0``
turns the watcher off) and fires an asset event when a file the collector would take appears:

- a local folder is read with one ``os.scandir``; an S3 prefix with one ``ListObjectsV2``
  (delimiter ``/``, what lies directly under the prefix, as the collector reads it);
- the names the collector skips are skipped here too: hidden names, ``.part``/``.tmp``/
  ``.crdownload`` uploads in progress, names matching none of the source's patterns, anything
  under a sub-prefix (``processed/``);
- a local file modified less than ``CDRFLOW_WATCH_SETTLE_SECONDS`` (default 1) ago is left for
  the next listing: a writer that does not use a ``.part`` name is probably still writing it.
  S3 objects appear only once complete.

The trigger remembers each file it announced by name, size and modification time, as long as
the file stays there: a file is announced once however long it waits (a collector failing on
it does not make it fire every five seconds), and announced again only when it changes or
comes back after being moved away. Nothing is kept across a triggerer restart on purpose: the
files then present are exactly the ones not collected yet (the collector moves what it
registered), so the restarted trigger announces them once, which is what they need.

The bucket collector is scheduled on that asset **or** its one-minute timetable
(:mod:`cdrflow.orchestration.collector_dag`): the timetable is the fallback for a triggerer that
is down, a source the watcher cannot list (other object stores), and the other source kinds
(SFTP and FTP are only polled; mailboxes have IMAP IDLE: :mod:`cdrflow.orchestration.mail_watch`).
The trigger reads the carrier file afresh when it changes, so a source added to it is watched
without a restart; the triggerer needs the same environment as the workers
(``CDRFLOW_CARRIERS_FILE``, ``CDRFLOW_STATE_DIR``, the ``aws`` connections).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from cdrflow.config.errors import one_line
from cdrflow.orchestration.watched_sources import SourcesOfKind

KIND = "bucket"
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".crdownload")  # as cdrflow.sources.bucket skips them

# what a listing found: "carrier url name" -> (size, modification stamp)
Listing = dict[str, tuple[int, str]]


def watch_seconds() -> float:
    """How often the sources are listed (``CDRFLOW_WATCH_SECONDS``, default 5); 0: not watched."""
    value = float(os.environ.get("CDRFLOW_WATCH_SECONDS") or 5)
    return 0.0 if value <= 0 else max(value, 1.0)


def settle_seconds() -> float:
    """How long a local file must be left alone before it is announced (``CDRFLOW_WATCH_SETTLE_SECONDS``)."""
    return max(float(os.environ.get("CDRFLOW_WATCH_SETTLE_SECONDS") or 1), 0.0)


def takes(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether the bucket collector would take a file of this name (its own rules)."""
    from cdrflow.sources.base import matches

    if not name or name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES):
        return False
    return matches(name, patterns)


def local_folder(url: str) -> Path | None:
    """The directory of a local source (a path, relative ones under the state directory, or a
    ``file://`` URL), as the collector resolves it; None for an object store."""
    from cdrflow.config import settings

    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        return Path(unquote(parts.path)) if parts.scheme in ("file", "local") else None
    folder = Path(url).expanduser()
    return folder if folder.is_absolute() else settings.state_dir() / folder


def list_folder(folder: Path, patterns: tuple[str, ...], settle: float, now: float | None = None) -> dict:
    """name -> (size, mtime) of the files the collector would take, left alone ``settle`` seconds.

    A missing folder lists as empty: the collector creates it at its first run."""
    now = time.time() if now is None else now
    found: dict[str, tuple[int, str]] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not takes(entry.name, patterns):
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except OSError:  # gone between the listing and the stat
            continue
        if now - st.st_mtime >= settle:
            found[entry.name] = (st.st_size, repr(st.st_mtime_ns))
    return found


def list_prefix(client: Any, url: str, patterns: tuple[str, ...]) -> dict:
    """name -> (size, last modified) of the objects directly under an ``s3://bucket/prefix/``
    that the collector would take: one ListObjectsV2 call (at most 1,000 keys; more than that
    waiting is reason enough to run the collector anyway)."""
    parts = urlsplit(url.strip())
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    page = client.list_objects_v2(Bucket=parts.netloc, Prefix=prefix, Delimiter="/")
    found: dict[str, tuple[int, str]] = {}
    for obj in page.get("Contents", []):
        name = obj["Key"][len(prefix) :]
        if "/" not in name and takes(name, patterns):
            found[name] = (int(obj["Size"]), str(obj["LastModified"]))
    return found


def new_files(seen: Listing, listing: Listing) -> list[str]:
    """The files of ``listing`` that ``seen`` does not hold with the same size and stamp."""
    return sorted(key for key, stamp in listing.items() if seen.get(key) != stamp)


class NewFilesTrigger(BaseEventTrigger):
    """Fires an asset event when a bucket or folder source holds a file not announced yet.

    Never ends: a source that cannot be listed is logged (once per distinct reason) and tried
    again at the next listing; the others go on being watched. ``carriers_file`` (default: the
    ``CDRFLOW_CARRIERS_FILE`` of the triggerer) is for tests and benchmarks."""

    def __init__(self, poll_seconds: float = 5.0, settle_seconds: float = 1.0, carriers_file: str | None = None):
        super().__init__()
        self.poll_seconds = float(poll_seconds)
        self.settle_seconds = float(settle_seconds)
        self.carriers_file = carriers_file
        self._carrier_sources = SourcesOfKind(KIND, carriers_file)
        self._clients: dict[str | None, Any] = {}
        self._problems: dict[str, str] = {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{__name__}.NewFilesTrigger",
            {
                "poll_seconds": self.poll_seconds,
                "settle_seconds": self.settle_seconds,
                "carriers_file": self.carriers_file,
            },
        )

    def _report(self, where: str, problem: str | None) -> None:
        """Log a source's problem when it first appears or changes, and its recovery."""
        before = self._problems.pop(where, None)
        if problem:
            self._problems[where] = problem
            if problem != before:
                self.log.warning("%s not watched: %s (its files wait for the one-minute collector run)", where, problem)
        elif before:
            self.log.info("%s watched again", where)

    def _sources(self) -> list:
        """(carrier, BucketSource) of the carrier file, read again only when the file changed."""
        return self._carrier_sources.current(self._report)

    def _client(self, conn_id: str | None) -> Any:
        if conn_id not in self._clients:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._clients[conn_id] = S3Hook(aws_conn_id=conn_id).get_conn()
        return self._clients[conn_id]

    def listing(self) -> Listing:
        """Every watched source's files, keyed ``carrier url name`` (blocking: run in a thread)."""
        out: Listing = {}
        for carrier, source in self._sources():
            where = f"{carrier} bucket source {source.url}"
            patterns = tuple(source.patterns)
            try:
                folder = local_folder(source.url)
                if folder is not None:
                    found = list_folder(folder, patterns, self.settle_seconds)
                elif urlsplit(source.url.strip()).scheme == "s3":
                    found = list_prefix(self._client(source.conn_id), source.url, patterns)
                else:
                    self._report(where, "only local folders and s3:// prefixes are watched")
                    continue
            except Exception as exc:
                self._report(where, one_line(exc))
                continue
            self._report(where, None)
            out.update({f"{carrier} {source.url} {name}": stamp for name, stamp in found.items()})
        return out

    async def run(self) -> AsyncIterator[TriggerEvent]:
        seen: Listing = {}
        while True:
            listing = await asyncio.to_thread(self.listing)
            new = new_files(seen, listing)
            seen = listing  # forget what left: a file dropped again under its name is new again
            if new:
                yield TriggerEvent({"files": new[:20], "new": len(new)})
            await asyncio.sleep(self.poll_seconds)


def bucket_files_asset(poll: float | None = None) -> Asset:
    """The asset the bucket collector is scheduled on, watched when ``poll`` (default
    :func:`watch_seconds`) is not 0."""
    poll = watch_seconds() if poll is None else poll
    watchers = [
        AssetWatcher(
            name="cdrflow_bucket_watch",
            trigger=NewFilesTrigger(poll_seconds=poll, settle_seconds=settle_seconds()),
        )
    ]
    return Asset(
        name="cdrflow_bucket_files",
        uri="cdrflow://sources/bucket-files",
        group="cdrflow",
        watchers=watchers if poll else [],
    )
