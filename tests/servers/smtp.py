"""A real SMTP server on loopback (aiosmtpd) for the notification tests.

``smtp_server`` starts one per test, in a thread of the test process, on a free port of
127.0.0.1, with no TLS and no login (as a relay inside a deployment's network would be). It
keeps every message it received, as parsed e-mail with its envelope, in ``messages``: the tests
read what the server got, not what the client meant to send. ``airflow_conn_json()`` is the
``AIRFLOW_CONN_SMTP_DEFAULT`` that points the SMTP provider at it. A server that cannot start
FAILS the test with the reason.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def html(self) -> str:
        """The body, decoded (the SMTP provider sends one text/html part)."""
        part = self.message.get_body(preferencelist=("html", "plain"))
        assert part is not None, f"no body in {self.message}"
        return part.get_content()

    @property
    def text(self) -> str:
        """The body as a mail client shows it: tags dropped, entities read."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.html))


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def airflow_conn_json(self) -> str:
        """JSON for ``AIRFLOW_CONN_<ID>``: plain SMTP, no STARTTLS, no login, no retries."""
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": self.host,
                "port": self.port,
                "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 0},
            }
        )

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, count: int, seconds: float = 5.0) -> list[Received]:
        """The messages once there are ``count`` of them (the server stores them in its own thread)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(self.received()) < count:
            time.sleep(0.05)
        return self.received()

    # aiosmtpd handler hook
    async def handle_DATA(self, server, session, envelope) -> str:  # (aiosmtpd's name)
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    server = SmtpServer("127.0.0.1", _free_port())
    controller = Controller(server, hostname=server.host, port=server.port, ready_timeout=10)
    try:
        controller.start()
    except Exception as exc:  # (any reason is the test's failure)
        pytest.fail(f"the SMTP server on {server.host}:{server.port} did not start: {exc}")
    try:
        yield server
    finally:
        controller.stop()
