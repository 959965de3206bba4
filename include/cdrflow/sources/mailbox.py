"""The mailbox collector: CDR files that carriers send as email attachments, over IMAP.

For every message of the source folder (by UID; ``\\Seen``/UNSEEN is never relied on), the
collector reads the From header; a sender not in ``source.senders`` is reported as skipped and
its message is left where it is, untouched (only ``BODY.PEEK`` is fetched). Of an allowed
message, every attachment at any depth of the MIME tree (nested multiparts, forwarded
``message/rfc822`` parts) whose name matches ``source.attachments`` is registered through
:func:`cdrflow.sources.base.collect_one`. Only then is the message moved to
``source.processed_folder`` (or flagged ``\\Flagged`` when that is None). A crash between the two
steps just collects the message again next run, and the registry records its files as
duplicates of the first registration (same SHA1).

The client comes from the Airflow connection ``source.conn_id`` through the imap provider's
:class:`ImapHook` (conn_type imap; extra ``use_ssl``: false for plain IMAP, default true; extra
``timeout``: seconds, default 30).
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import io
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from urllib.parse import quote

from sqlalchemy import Engine

from cdrflow.config.carrier_file import MailboxSource
from cdrflow.config.errors import ConfigurationError, SourceUnavailable, one_line
from cdrflow.intake.names import clean_name
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import MailFields
from cdrflow.sources.base import Collected, collect_one, matches, skipped

log = logging.getLogger("cdrflow.sources")

DEFAULT_TIMEOUT = 30.0
_timeout_lock = threading.Lock()


def _reason(exc: BaseException) -> str:
    """:func:`one_line` of an exception; imaplib hands the server's reply over as bytes, which
    are decoded first (never shown as ``b'...'``)."""
    if isinstance(exc, imaplib.IMAP4.error) and exc.args and isinstance(exc.args[0], bytes):
        exc = type(exc)(exc.args[0].decode(errors="replace"))
    return one_line(exc)


def _quote_mailbox(name: str) -> str:
    # imaplib sends mailbox names verbatim: a name with a space or a quote must be quoted here.
    # (Non-ASCII names would need IMAP's modified UTF-7, which imaplib does not do either;
    # configure ASCII folder names.)
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # ImapHook builds imaplib.IMAP4(host, port) without a timeout, and imaplib then waits for the
    # server's greeting forever. The default socket timeout is the only way to bound that through
    # the hook. It is process-wide, so it is set only around the connect (sockets other threads
    # create in that moment get the same bound) and restored at once.
    with _timeout_lock:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(seconds)
        try:
            yield
        finally:
            socket.setdefaulttimeout(previous)


@contextmanager
def connect(source: MailboxSource) -> Iterator[imaplib.IMAP4]:
    """A logged-in imaplib client for ``source.conn_id``; logged out at the end.

    Raises :class:`SourceUnavailable` when the server refuses, times out or rejects the login,
    :class:`ConfigurationError` when the connection is not defined or has no login/password.
    """
    from airflow.exceptions import AirflowNotFoundException
    from airflow.providers.imap.hooks.imap import ImapHook

    hook = ImapHook(imap_conn_id=source.conn_id)
    try:
        conn = hook.get_connection(source.conn_id)
    except AirflowNotFoundException:
        raise ConfigurationError(
            f"mailbox connection {source.conn_id!r} is not defined "
            f"(AIRFLOW_CONN_{source.conn_id.upper()} or a secrets backend)"
        ) from None
    use_ssl = conn.extra_dejson.get("use_ssl", True)  # the hook's own default
    where = f"mailbox {source.conn_id} ({conn.host}:{conn.port or (993 if use_ssl else 143)})"
    if not (conn.login and conn.password):
        # the hook would connect without logging in, and every command would then fail
        raise ConfigurationError(f"{where}: the connection needs a login and a password")
    timeout = float(conn.extra_dejson.get("timeout", DEFAULT_TIMEOUT))
    try:
        try:
            with _socket_timeout(timeout):
                hook.get_conn()
        except BaseException:
            if hook.mail_client is not None:  # connected, but the login failed: close the socket
                hook.mail_client.shutdown()
            raise
    except imaplib.IMAP4.abort as exc:  # before IMAP4.error: abort is its subclass
        raise SourceUnavailable(f"{where}: connection lost: {_reason(exc)}") from exc
    except imaplib.IMAP4.error as exc:
        raise SourceUnavailable(f"{where}: login refused for user {conn.login!r}: {_reason(exc)}") from exc
    except TimeoutError as exc:
        raise SourceUnavailable(f"{where}: timed out after {timeout:g}s") from exc
    except OSError as exc:  # refused, unreachable, unknown host, TLS handshake
        raise SourceUnavailable(f"{where}: cannot connect: {_reason(exc)}") from exc
    client = hook.mail_client
    assert client is not None, "ImapHook.get_conn() sets mail_client"
    try:
        yield client
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass  # already gone; nothing to clean up on our side


class _Imap:
    """The few IMAP commands the collector uses, each checked: a failure or a NO/BAD reply
    becomes one :class:`SourceUnavailable` that says which server and what failed."""

    def __init__(self, client: imaplib.IMAP4, source: MailboxSource):
        self.client = client
        self.where = f"mailbox {source.conn_id} ({client.host}:{client.port})"

    def __call__(self, what: str, command: str, *args, ok_codes: tuple[str, ...] = ()) -> list:
        try:
            typ, data = getattr(self.client, command)(*args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise SourceUnavailable(f"{self.where}: {what} failed: {_reason(exc)}") from exc
        if typ != "OK":
            text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
            if not any(code in text for code in ok_codes):
                raise SourceUnavailable(f"{self.where}: {what} failed: {text or typ}")
        return data

    def fetch(self, uid: bytes, item: str) -> bytes | None:
        """One FETCH item of message ``uid`` (None when the message is gone)."""
        data = self("fetch of message UID " + uid.decode(), "uid", "FETCH", uid, f"({item})")
        return next((d[1] for d in data if isinstance(d, tuple)), None)

    def capabilities(self) -> set[str]:
        # asked again after login: the greeting's list does not show MOVE or UIDPLUS
        return {
            c.upper()
            for line in self("CAPABILITY", "capability")
            if isinstance(line, bytes)
            for c in line.decode().split()
        }


def _senders(message: EmailMessage) -> list[str]:
    try:
        return [a.addr_spec for a in message["From"].addresses] if message["From"] else []
    except (AttributeError, TypeError, ValueError, IndexError):  # a header too broken to parse
        return []


def _header(message: EmailMessage, name: str) -> str | None:
    """A header decoded (encoded words); as it came when too broken for the parser."""
    try:
        value = message[name]
        return str(value) if value is not None else None
    except (IndexError, ValueError, TypeError, AttributeError):
        return next((str(v) for k, v in message.raw_items() if k.lower() == name.lower()), None)


def _attachments(message: EmailMessage) -> Iterator[tuple[str, bytes]]:
    """(raw name, decoded bytes) of every named leaf part, at any depth: ``walk`` descends into
    nested multiparts and into forwarded ``message/rfc822`` parts. Names come decoded from
    RFC 2231 and encoded words by the email package (policy=default)."""
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name:
            payload = part.get_payload(decode=True)  # bytes for a leaf part
            yield name, payload if isinstance(payload, bytes) else b""


def _done(imap: _Imap, uid: bytes, source: MailboxSource, caps: set[str]) -> str:
    """Move (or flag) a message whose files are registered; returns what was done."""
    if source.processed_folder is None:
        imap("flagging message UID " + uid.decode(), "uid", "STORE", uid, "+FLAGS.SILENT", r"(\Flagged)")
        return "flagged"
    target = _quote_mailbox(source.processed_folder)
    what = f"moving message UID {uid.decode()} to {source.processed_folder}"
    if "MOVE" in caps:
        imap(what, "uid", "MOVE", uid, target)
    else:  # RFC 6851 fallback: copy, mark deleted, expunge (only this UID when UIDPLUS allows)
        imap(what, "uid", "COPY", uid, target)
        imap(what, "uid", "STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in caps:
            imap(what, "uid", "EXPUNGE", uid)
        else:
            imap(what, "expunge")
    return f"moved to {source.processed_folder}"


def collect(
    engine: Engine,
    store: RawStore,
    carrier: str,
    source: MailboxSource,
    client: imaplib.IMAP4,
    *,
    caps: set[str] | None = None,
) -> list[Collected]:
    """Register the matching attachments of every message in ``source.folder`` (see the module
    docstring). ``caps`` overrides the server's capabilities (tests of the MOVE fallback)."""
    imap = _Imap(client, source)
    # SELECT, not EXAMINE: messages are moved or flagged. A missing folder answers NO.
    imap(f"opening folder {source.folder!r}", "select", _quote_mailbox(source.folder))
    uidvalidity = (client.response("UIDVALIDITY")[1][0] or b"0").decode()
    caps = imap.capabilities() if caps is None else caps
    # Flag mode: a flagged message is done. Move mode: whatever is still here is not.
    criteria = "ALL" if source.processed_folder else "UNFLAGGED"
    uids = imap("searching messages", "uid", "SEARCH", None, criteria)[0].split()
    if uids and source.processed_folder:
        imap(
            f"creating folder {source.processed_folder!r}",
            "create",
            _quote_mailbox(source.processed_folder),
            ok_codes=("[ALREADYEXISTS]",),
        )

    base_uri = f"imap://{client.host}:{client.port}/{quote(source.folder, safe='')};UIDVALIDITY={uidvalidity}"
    results: list[Collected] = []
    for uid in uids:
        uri = f"{base_uri}/;UID={uid.decode()}"  # RFC 5092 form; never credentials
        head = imap.fetch(uid, "BODY.PEEK[HEADER]")
        if head is None:
            continue  # expunged meanwhile by someone else
        senders = _senders(email.message_from_bytes(head, policy=email.policy.default))
        if not senders or not all(matches(s, source.senders) for s in senders):
            log.info(
                "mailbox %s %s: sender %s not allowed; message left in %s",
                carrier,
                uri,
                ", ".join(senders) or "(none)",
                source.folder,
            )
            results.append(
                skipped(
                    kind="mailbox",
                    carrier=carrier,
                    name=f"message UID {uid.decode()}",
                    reason="sender not allowed",
                    source_uri=uri,
                )
            )
            continue
        raw = imap.fetch(uid, "BODY.PEEK[]")
        if raw is None:
            continue
        message = email.message_from_bytes(raw, policy=email.policy.default)
        mail = MailFields(
            message_id=_header(message, "Message-ID"),
            sender=_header(message, "From"),
            recipients=_header(message, "To"),
            subject=_header(message, "Subject"),
        )
        taken = 0
        for raw_name, payload in _attachments(message):
            name = clean_name(raw_name)
            if not matches(name, source.attachments):
                log.info(
                    "mailbox %s %s: attachment %r does not match %s; not taken",
                    carrier,
                    uri,
                    name,
                    ", ".join(source.attachments),
                )
                continue
            results.append(
                collect_one(
                    engine,
                    store,
                    io.BytesIO(payload),
                    kind="mailbox",
                    carrier=carrier,
                    name=name,
                    source_uri=uri,
                    mail=mail,
                )
            )
            taken += 1
        done = _done(imap, uid, source, caps)
        if taken:
            log.info("mailbox %s %s: %d file(s) registered; message %s", carrier, uri, taken, done)
        else:
            log.warning(
                "mailbox %s %s (%s, %r): no attachment matches %s; message %s",
                carrier,
                uri,
                mail.sender,
                mail.subject,
                ", ".join(source.attachments),
                done,
            )
    return results


def run(engine: Engine, store: RawStore, carrier: str, source: MailboxSource) -> list[Collected]:
    """Connect, collect, log out."""
    with connect(source) as client:
        return collect(engine, store, carrier, source, client)
