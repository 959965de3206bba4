"""Fresh data from mailboxes: IMAP IDLE starts the mailbox collector when mail arrives, not at
its next one-minute tick, and no worker slot waits for it.

The asset ``cdrflow_mailbox_mail`` has an :class:`~airflow.sdk.AssetWatcher`: the **triggerer**
runs :class:`NewMailTrigger`, which holds one IMAP connection per ``kind: mailbox`` source of the
carrier file (its ``conn_id`` through ``ImapHook``, its folder opened read-only) and waits in
IDLE (:mod:`cdrflow.sources.mailbox_idle`). When the server says ``EXISTS`` (new mail), the
trigger searches the folder as the collector would (every message when they are moved when done,
the unflagged ones when they are flagged) and fires an asset event for messages it has not
announced yet; ``cdrflow_collect_mailbox`` then runs at once. Like the bucket watcher
(:mod:`cdrflow.orchestration.source_watch`), a message is announced once for as long as it stays
(a message from a sender not allowed, left in the folder, does not start runs again and again),
and what is waiting when the trigger starts is announced once.

- IDLE is re-issued every ``reissue_seconds`` (default 25 minutes: servers may drop a client
  idle for 30, RFC 2177); a connection silent for longer than that plus 90 seconds is taken as
  dead.
- A dropped connection, a refused one, a refused login: logged once per distinct reason (``acme
  mailbox source ... not watched: ...``), then connected again with back-off (1 s doubling to 5
  minutes); the recovery is logged. Mail that came meanwhile is found by the search after the
  reconnect (and by the one-minute poll in between).
- A server whose CAPABILITY lacks IDLE is logged once and left to the poll; it is asked again
  every hour (an upgraded server is then watched).

The mailbox collector is scheduled on that asset **or** its one-minute timetable
(:mod:`cdrflow.orchestration.collector_dag`): the poll stays the fallback for everything. The
carrier file is read again when it changes: a mailbox added to it is watched, a removed one's
connection closed, without a restart. The triggerer needs the workers' environment
(``CDRFLOW_CARRIERS_FILE`` and the mailbox connections). ``CDRFLOW_IMAP_IDLE=0`` (or
``CDRFLOW_WATCH_SECONDS=0``, which turns every watcher off) leaves mailboxes to the poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from cdrflow.config.errors import one_line
from cdrflow.orchestration.watched_sources import SourcesOfKind

# a logger of the standard library (the triggerer writes it to its log like its own): one line
# per source when it starts being watched, when it cannot be, and when it recovers
log = logging.getLogger(__name__)

KIND = "mailbox"
REISSUE_SECONDS = 25 * 60.0
SILENCE_MARGIN = 90.0  # beyond the re-issue: how long a connection may be silent before it is dead
NO_IDLE_RECHECK = 3600.0
MAX_BACKOFF = 300.0


def imap_idle_enabled() -> bool:
    """``CDRFLOW_IMAP_IDLE`` (default on) and the watchers as a whole (``CDRFLOW_WATCH_SECONDS``)."""
    from cdrflow.orchestration.source_watch import watch_seconds

    flag = (os.environ.get("CDRFLOW_IMAP_IDLE") or "1").strip().lower()
    return flag not in ("0", "false", "no", "off") and bool(watch_seconds())


class NewMailTrigger(BaseEventTrigger):
    """Fires an asset event when a mailbox source holds a message not announced yet.

    Never ends (each source is watched, or retried, on its own). ``carriers_file`` (default: the
    ``CDRFLOW_CARRIERS_FILE`` of the triggerer) and the shorter periods are for tests."""

    def __init__(
        self,
        carriers_file: str | None = None,
        reissue_seconds: float = REISSUE_SECONDS,
        recheck_seconds: float = NO_IDLE_RECHECK,
        config_seconds: float = 30.0,
    ):
        super().__init__()
        self.carriers_file = carriers_file
        self.reissue_seconds = float(reissue_seconds)
        self.recheck_seconds = float(recheck_seconds)
        self.config_seconds = float(config_seconds)
        self._carrier_sources = SourcesOfKind(KIND, carriers_file)
        self._problems: dict[str, str] = {}
        self._watched: set[str] = set()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{__name__}.NewMailTrigger",
            {
                "carriers_file": self.carriers_file,
                "reissue_seconds": self.reissue_seconds,
                "recheck_seconds": self.recheck_seconds,
                "config_seconds": self.config_seconds,
            },
        )

    def _report(
        self, where: str, problem: str | None, then: str = "its mail waits for the one-minute collector run"
    ) -> None:
        """Log a source's problem when it first appears or changes, and its recovery."""
        before = self._problems.pop(where, None)
        if problem:
            self._problems[where] = problem
            if problem != before:
                log.warning("%s not watched: %s (%s)", where, problem, then)
        elif before:
            log.info("%s watched again (IMAP IDLE)", where)

    def _sources(self) -> list:
        """(carrier, MailboxSource) of the carrier file, read again only when the file changed."""
        return self._carrier_sources.current(self._report)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        events: asyncio.Queue[dict] = asyncio.Queue()
        watching: dict[str, tuple[Any, asyncio.Task]] = {}
        try:
            while True:
                wanted = {
                    f"{carrier} mailbox source {s.conn_id}/{s.folder}": (carrier, s) for carrier, s in self._sources()
                }
                for where in list(watching):
                    source, task = watching[where]
                    if wanted.get(where, (None, None))[1] != source:  # removed or changed
                        task.cancel()
                        del watching[where]
                        self._problems.pop(where, None)
                        self._watched.discard(where)
                for where, (carrier, source) in wanted.items():
                    if where not in watching:
                        task = asyncio.create_task(self._watch(where, carrier, source, events), name=where)
                        watching[where] = (source, task)
                try:
                    event = await asyncio.wait_for(events.get(), timeout=self.config_seconds)
                except TimeoutError:
                    continue
                yield TriggerEvent(event)
        finally:
            for _, task in watching.values():
                task.cancel()
            await asyncio.gather(*(task for _, task in watching.values()), return_exceptions=True)

    async def _watch(self, where: str, carrier: str, source: Any, events: asyncio.Queue) -> None:
        """Watch one source for as long as it is configured: connect, announce what waits, IDLE,
        and again; every blocking call in a thread of the source's own (a long IDLE must not
        hold a thread of the loop's shared pool, which other triggers need)."""
        from cdrflow.sources.mailbox_idle import MailboxWatch, NoIdle

        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdrflow-imap-idle")
        announced: set[tuple[str, int]] = set()  # (UIDVALIDITY, UID) announced and still there
        backoff = 1.0

        def blocking(fn, *args):
            return loop.run_in_executor(pool, fn, *args)

        try:
            while True:
                watch = MailboxWatch(source)
                pause = 0.0
                try:
                    await blocking(watch.open)
                    if where not in self._watched:
                        self._watched.add(where)
                        log.info("%s watched with IMAP IDLE", where)
                    self._report(where, None)
                    backoff = 1.0
                    while True:
                        uids = [(watch.uidvalidity, uid) for uid in await blocking(watch.waiting)]
                        fresh = [uid for uid in uids if uid not in announced]
                        announced = set(uids)  # forget what left: the collector took it
                        if fresh:
                            await events.put({"mailbox": where, "carrier": carrier, "new": len(fresh)})
                        await self._idle_once(watch, blocking, loop)
                except NoIdle as exc:
                    self._report(where, str(exc), "left to the one-minute collector run")
                    pause = self.recheck_seconds
                except Exception as exc:  # refused, login refused, dropped: again, later
                    self._report(where, one_line(exc))
                    pause, backoff = backoff, min(backoff * 2, MAX_BACKOFF)
                finally:
                    watch.abort()  # unblocks the thread if it is still idling (cancelled)
                    await asyncio.shield(blocking(watch.close))  # no connection held while waiting
                await asyncio.sleep(pause)
        finally:
            pool.shutdown(wait=False)

    async def _idle_once(self, watch: Any, blocking: Any, loop: asyncio.AbstractEventLoop) -> None:
        """One IDLE: until new mail is told, or ``reissue_seconds`` have passed."""
        woken = asyncio.Event()
        idling = blocking(
            watch.idle, lambda: loop.call_soon_threadsafe(woken.set), self.reissue_seconds + SILENCE_MARGIN
        )
        # when this is cancelled (the trigger stops), the thread ends with an error of the shut
        # socket that nobody awaits any more: retrieve it, or asyncio logs it as never retrieved
        idling.add_done_callback(lambda f: f.cancelled() or f.exception())
        told = asyncio.ensure_future(woken.wait())
        try:
            await asyncio.wait({idling, told}, timeout=self.reissue_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            told.cancel()
        if not idling.done():
            watch.done()  # mail came, or time to re-issue: end this IDLE
        await idling  # the server's tagged reply (or the error that ended it)


def mailbox_mail_asset(enabled: bool | None = None) -> Asset:
    """The asset the mailbox collector is scheduled on, watched (IMAP IDLE) when ``enabled``
    (default :func:`imap_idle_enabled`)."""
    enabled = imap_idle_enabled() if enabled is None else enabled
    watchers = [AssetWatcher(name="cdrflow_mailbox_watch", trigger=NewMailTrigger())]
    return Asset(
        name="cdrflow_mailbox_mail",
        uri="cdrflow://sources/mailbox-mail",
        group="cdrflow",
        watchers=watchers if enabled else [],
    )
