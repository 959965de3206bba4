"""Watching one mailbox source with IMAP IDLE (RFC 2177), blocking: what the mail watcher
(:mod:`cdrflow.orchestration.mail_watch`) runs in a thread of its own for each source.

Python 3.11's :mod:`imaplib` has no IDLE command and Airflow's ``ImapHook`` none either, so the
exchange is written here, on the socket of the client that :func:`cdrflow.sources.mailbox.connect`
(``ImapHook``) opened and logged in::

    C: CDRIDLE1 IDLE            (our own tag: imaplib's numbering is left alone)
    S: + idling
    S: * 5 EXISTS               (new mail: the watcher is woken)
    C: DONE                     (from the watcher's thread: a mail arrived, or time to re-issue)
    S: CDRIDLE1 OK Idle completed

Everything else (login, CAPABILITY, EXAMINE, UID SEARCH, LOGOUT) is imaplib's. The folder is
opened read-only (EXAMINE): the watcher changes nothing, and the collector's own connection
moves or flags the messages.
"""

from __future__ import annotations

import imaplib
import itertools
import re
import socket
import threading
from collections.abc import Callable
from contextlib import ExitStack

from cdrflow.config.carrier_file import MailboxSource
from cdrflow.config.errors import SourceUnavailable
from cdrflow.sources.mailbox import _Imap, _quote_mailbox, connect

# RFC 2177: a server may log out a client idle for 30 minutes; re-issue IDLE well before.
REISSUE_SECONDS = 25 * 60
_EXISTS = re.compile(rb"^\* \d+ EXISTS\b", re.IGNORECASE)
_tags = itertools.count(1)


class NoIdle(Exception):
    """The server's CAPABILITY (after login) does not list IDLE."""


class MailboxWatch:
    """One logged-in connection to one mailbox source, opened read-only on its folder.

    All methods but :meth:`done` and :meth:`abort` are blocking and are called from one thread;
    those two only send or shut the socket, and are what another thread calls to end an IDLE."""

    def __init__(self, source: MailboxSource):
        self.source = source
        self.uidvalidity = ""
        self._stack = ExitStack()
        self._client: imaplib.IMAP4 | None = None
        self._imap: _Imap | None = None
        self._lock = threading.Lock()
        self._tag = b""
        self._idling = False  # the server sent "+": DONE may be sent
        self._ending = False  # DONE asked for (sent now, or as soon as "+" comes)

    def open(self) -> None:
        """Connect and log in (``ImapHook``), check IDLE, EXAMINE the folder.

        Raises :class:`NoIdle`, or what :func:`~cdrflow.sources.mailbox.connect` raises
        (:class:`SourceUnavailable`: refused, timed out, login refused; ``ConfigurationError``)."""
        self._client = self._stack.enter_context(connect(self.source))
        self._imap = _Imap(self._client, self.source)
        if "IDLE" not in self._imap.capabilities():
            raise NoIdle(f"{self._imap.where}: the server does not offer IDLE (not in its CAPABILITY)")
        self._imap(f"opening folder {self.source.folder!r}", "select", _quote_mailbox(self.source.folder), True)
        self.uidvalidity = (self._client.response("UIDVALIDITY")[1][0] or b"0").decode()

    def waiting(self) -> list[int]:
        """The UIDs of the messages the collector would look at: every message of the folder
        when messages are moved when done, the unflagged ones when they are flagged."""
        client, imap = self._client, self._imap
        assert client is not None and imap is not None, "open() first"
        criteria = "ALL" if self.source.processed_folder else "UNFLAGGED"
        client.response("EXISTS")  # forget what earlier commands were told
        for _ in range(3):
            found = imap("searching messages", "uid", "SEARCH", None, criteria)
            # A mail that arrived during the SEARCH is told (EXISTS) with its reply, and not
            # again in the IDLE that follows: search again so that it is not missed.
            if client.response("EXISTS")[1] == [None]:
                break
        return [int(u) for u in (found[0] or b"").split()]

    def idle(self, woken: Callable[[], None], timeout: float) -> None:
        """Send IDLE and read the server's lines until its tagged reply to our DONE; call
        ``woken`` for each ``EXISTS`` (new mail). The socket waits ``timeout`` seconds at most
        for a line (the server's own keep-alives come every few minutes): a silent connection is
        a dead one. Raises :class:`SourceUnavailable` when the connection drops or the server
        refuses IDLE."""
        client, imap = self._client, self._imap
        assert client is not None and imap is not None, "open() first"
        # The flags are reset when an IDLE ends, not here: a done() that came before this thread
        # got to run must not be forgotten (a DONE left over ends the next IDLE at once: harmless).
        self._tag = b"CDRIDLE%d" % next(_tags)
        sock = client.socket()
        before = sock.gettimeout()
        sock.settimeout(timeout)
        try:
            client.send(self._tag + b" IDLE\r\n")
            while True:
                line = client.readline()
                if not line:
                    raise SourceUnavailable(f"{imap.where}: the server closed the connection")
                if line.startswith(b"+"):
                    with self._lock:
                        self._idling = True
                        if self._ending:  # done() came before the server's "+"
                            client.send(b"DONE\r\n")
                elif line.startswith(self._tag + b" "):
                    status = line[len(self._tag) + 1 :].split(b" ", 1)[0].upper()
                    if status != b"OK":
                        raise SourceUnavailable(f"{imap.where}: IDLE refused: {line.decode(errors='replace').strip()}")
                    return
                elif _EXISTS.match(line):
                    woken()
                elif line.upper().startswith(b"* BYE"):
                    raise SourceUnavailable(
                        f"{imap.where}: the server ended the session: {line.decode(errors='replace').strip()}"
                    )
                # anything else (RECENT, EXPUNGE, FETCH flags, "* OK Still here") changes nothing
        except (OSError, imaplib.IMAP4.error) as exc:  # a timed-out socket, a reset: gone
            raise SourceUnavailable(f"{imap.where}: connection lost while idling: {exc or type(exc).__name__}") from exc
        finally:
            with self._lock:
                self._idling = self._ending = False
            try:
                sock.settimeout(before)
            except OSError:
                pass

    def done(self) -> None:
        """End the IDLE (thread-safe): ``DONE`` now, or as soon as the server's ``+`` comes (a
        client may not send it before, RFC 2177). :meth:`idle` then returns."""
        client = self._client
        with self._lock:
            if self._ending or client is None:
                return
            self._ending = True
            if self._idling:
                try:
                    client.send(b"DONE\r\n")
                except OSError:
                    pass  # gone: idle() is raising already

    def abort(self) -> None:
        """Shut the socket (thread-safe): a blocked :meth:`idle` returns at once with an error."""
        client = self._client
        if client is not None:
            try:
                client.socket().shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Log out (or just close what is left of the connection)."""
        client, self._client, self._imap = self._client, None, None
        self._stack.close()  # LOGOUT; on a dead connection imaplib gives up without closing
        if client is not None:
            try:
                client.shutdown()  # closes the socket
            except OSError:
                pass  # closed already (the LOGOUT went through)
