"""The mailbox collector against a real Dovecot on loopback (no mocks of imaplib or ImapHook).

Each test places messages with IMAP APPEND, runs the collector as the DAG would (through the
Airflow connection of an ``AIRFLOW_CONN_<ID>`` variable), and checks what a user sees: rows in
``cdr_files``, bytes in the raw store, and where the messages are afterwards.
"""

from __future__ import annotations

import json
import socket
from email.message import EmailMessage

import pytest

from cdrflow.config.carrier_file import MailboxSource
from cdrflow.config.errors import ConfigurationError, SourceUnavailable
from cdrflow.dev.generate import asterisk_bytes, demo_day, kazoo_records
from cdrflow.sources import mailbox
from registry_rows import rows, stored
from servers.dovecot import free_port, imap_server

pytestmark = pytest.mark.integration

CONN_ID = "acme_mail"
SOURCE = MailboxSource(conn_id=CONN_ID, senders=("*@acme.example",), attachments=("*.csv", "*.json"))
PROCESSED = SOURCE.processed_folder

MASTER_CSV = asterisk_bytes(5, seed=1)
KAZOO_JSON = json.dumps(kazoo_records(3, seed=2, day=demo_day())).encode()
PDF = b"%PDF-1.4\n% not a CDR\n%%EOF\n"


@pytest.fixture
def server(imap_server, monkeypatch):
    """The session's Dovecot with empty folders, and the Airflow connection CONN_ID pointing at it."""
    imap_server.reset()
    monkeypatch.setenv(imap_server.env_name(CONN_ID), imap_server.airflow_conn_json())
    return imap_server


def mail(
    subject: str,
    attachments: list[tuple[str, bytes]] = (),
    *,
    sender: str = "CDR Robot <cdr@acme.example>",
    to: str = "billing@us.example",
) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{abs(hash(subject))}@acme.example>"
    m.set_content("CDRs attached.\n")
    for name, data in attachments:
        m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m


def test_two_cdr_attachments_registered_and_message_moved(server, engine, store, carrier):
    server.append(
        "INBOX", mail("CDRs 2026-11-01", [("Master.csv", MASTER_CSV), ("calls.json", KAZOO_JSON), ("invoice.pdf", PDF)])
    )

    result = mailbox.run(engine, store, carrier, SOURCE)

    assert [(c.name, c.outcome) for c in result] == [("Master.csv", "received"), ("calls.json", "received")]
    files = rows(engine)
    assert [f["file_name"] for f in files] == ["Master.csv", "calls.json"]
    for f, data in zip(files, (MASTER_CSV, KAZOO_JSON)):
        assert f["file_source"] == "email" and f["status"] == "received" and f["file_size"] == len(data)
        assert stored(store, f) == data
        assert f["mail_from"] == "CDR Robot <cdr@acme.example>"
        assert f["mail_to"] == "billing@us.example"
        assert f["mail_subject"] == "CDRs 2026-11-01"
        assert f["mail_message"].endswith("@acme.example>")
        assert f["source_uri"].startswith(f"imap://127.0.0.1:{server.port}/INBOX;UIDVALIDITY=")
        assert f["source_uri"].endswith("/;UID=1")
        assert server.password not in f["source_uri"] and server.user not in f["source_uri"]
    assert server.subjects("INBOX") == []
    assert server.subjects(PROCESSED) == ["CDRs 2026-11-01"]


def test_a_file_sent_again_is_a_duplicate_of_the_first(server, engine, store, carrier):
    server.append("INBOX", mail("day 1", [("Master.csv", MASTER_CSV)]))
    mailbox.run(engine, store, carrier, SOURCE)
    server.append("INBOX", mail("day 1 again", [("Master-resent.csv", MASTER_CSV)]))

    result = mailbox.run(engine, store, carrier, SOURCE)

    assert [(c.name, c.outcome) for c in result] == [("Master-resent.csv", "duplicate")]
    first, again = rows(engine)
    assert again["status"] == "duplicate" and again["duplicate_of"] == first["id"]
    assert again["mail_subject"] == "day 1 again"
    assert server.subjects(PROCESSED) == ["day 1", "day 1 again"]


def test_a_message_left_behind_by_a_crash_is_collected_again_as_duplicates(server, engine, store, carrier):
    message = mail("crash", [("Master.csv", MASTER_CSV), ("calls.json", KAZOO_JSON)])
    server.append("INBOX", message)
    mailbox.run(engine, store, carrier, SOURCE)
    server.append("INBOX", message)  # as if the move after registering had never happened

    result = mailbox.run(engine, store, carrier, SOURCE)

    assert [c.outcome for c in result] == ["duplicate", "duplicate"]
    assert [(f["status"], f["duplicate_of"]) for f in rows(engine)] == [
        ("received", None),
        ("received", None),
        ("duplicate", 1),
        ("duplicate", 2),
    ]
    assert server.subjects("INBOX") == [] and server.subjects(PROCESSED) == ["crash", "crash"]


def test_attachment_names_with_control_characters_become_clean_file_names(server, engine, store, carrier):
    # ESC, a LINE SEPARATOR and a NEL survive MIME encoding (RFC 2231) and would break every
    # table and log line that shows the name.
    server.append("INBOX", mail("odd names", [("Master\x1b[2J\u2028day\x85 1.csv", MASTER_CSV)]))

    result = mailbox.run(engine, store, carrier, SOURCE)

    assert [(c.name, c.outcome) for c in result] == [("Master_[2J_day_ 1.csv", "received")]
    assert [f["file_name"] for f in rows(engine)] == ["Master_[2J_day_ 1.csv"]


def test_a_sender_not_allowed_is_left_in_the_inbox(server, engine, store, carrier):
    server.append("INBOX", mail("totally CDRs", [("Master.csv", MASTER_CSV)], sender="mallory@evil.example"))

    result = mailbox.run(engine, store, carrier, SOURCE)

    assert [(c.outcome, c.reason) for c in result] == [("skipped", "sender not allowed")]
    assert rows(engine) == []
    [left] = server.messages("INBOX")
    assert left.subject == "totally CDRs" and "\\Seen" not in left.flags
    assert server.messages(PROCESSED) == []


def test_sender_patterns_ignore_case(server, engine, store, carrier):
    server.append("INBOX", mail("upper", [("Master.csv", MASTER_CSV)], sender="CDR@ACME.Example"))
    assert [c.outcome for c in mailbox.run(engine, store, carrier, SOURCE)] == ["received"]


def test_attachment_inside_a_forwarded_message(server, engine, store, carrier):
    inner = mail("original from the switch", [("Master.csv", MASTER_CSV)], sender="switch@pbx.example")
    outer = mail("Fwd: original from the switch")
    outer.add_attachment(inner)  # a message/rfc822 part
    assert any(p.get_content_type() == "message/rfc822" for p in outer.walk())
    server.append("INBOX", outer)

    result = mailbox.run(engine, store, carrier, SOURCE)

    assert [(c.name, c.outcome) for c in result] == [("Master.csv", "received")]
    [f] = rows(engine)
    assert stored(store, f) == MASTER_CSV
    assert f["mail_subject"] == "Fwd: original from the switch"  # the message that arrived
    assert server.subjects(PROCESSED) == ["Fwd: original from the switch"]


def test_attachment_names_are_never_paths(server, engine, store, carrier):
    server.append("INBOX", mail("sneaky", [("../../etc/passwd.csv", MASTER_CSV)]))

    result = mailbox.run(engine, store, carrier, SOURCE)

    assert [c.name for c in result] == ["passwd.csv"]
    assert [f["file_name"] for f in rows(engine)] == ["passwd.csv"]


def test_encoded_attachment_names(server, engine, store, carrier):
    # RFC 2231 (what EmailMessage writes for a non-ASCII name) and an RFC 2047 encoded word in a
    # quoted filename (what some mail clients write), side by side.
    m = mail("names", [("Übersicht März.csv", MASTER_CSV)])
    m.add_attachment(KAZOO_JSON, maintype="application", subtype="json", filename="placeholder.json")
    raw = m.as_bytes().replace(b'filename="placeholder.json"', b'filename="=?UTF-8?B?w6l0w6kuanNvbg==?="')
    server.append("INBOX", raw)

    result = mailbox.run(engine, store, carrier, SOURCE)

    assert [c.name for c in result] == ["Übersicht März.csv", "été.json"]


def test_collecting_twice_registers_nothing_new(server, engine, store, carrier):
    server.append("INBOX", mail("once", [("Master.csv", MASTER_CSV)]))
    assert len(mailbox.run(engine, store, carrier, SOURCE)) == 1

    assert mailbox.run(engine, store, carrier, SOURCE) == []
    assert len(rows(engine)) == 1


def test_a_message_without_matching_attachment_is_still_moved(server, engine, store, carrier, caplog):
    server.append("INBOX", mail("just a logo", [("logo.png", b"\x89PNG\r\n\x1a\n")]))

    with caplog.at_level("INFO", logger="cdrflow.sources"):
        assert mailbox.run(engine, store, carrier, SOURCE) == []

    assert rows(engine) == []
    assert server.subjects(PROCESSED) == ["just a logo"]
    assert "no attachment matches" in caplog.text and "logo.png" in caplog.text


def test_flag_mode_flags_and_then_skips(server, engine, store, carrier):
    source = MailboxSource(conn_id=CONN_ID, senders=("*@acme.example",), processed_folder=None)
    server.append("INBOX", mail("flag me", [("Master.csv", MASTER_CSV)]))

    assert [c.outcome for c in mailbox.run(engine, store, carrier, source)] == ["received"]
    [m] = server.messages("INBOX")
    assert "\\Flagged" in m.flags
    assert server.folders() == ["INBOX"]  # no processed folder was created

    assert mailbox.run(engine, store, carrier, source) == []
    assert len(rows(engine)) == 1


def test_move_without_the_move_capability(server, engine, store, carrier):
    server.append("INBOX", mail("old server", [("Master.csv", MASTER_CSV)]))
    server.append("INBOX", mail("not for us", sender="someone@else.example"))

    with mailbox.connect(SOURCE) as client:
        mailbox.collect(engine, store, carrier, SOURCE, client, caps={"UIDPLUS"})  # COPY, \Deleted, UID EXPUNGE

    assert server.subjects(PROCESSED) == ["old server"]
    assert server.subjects("INBOX") == ["not for us"]  # UID EXPUNGE removed only the moved message


def test_missing_folder(server, engine, store, carrier):
    source = MailboxSource(conn_id=CONN_ID, senders=("*",), folder="No Such Folder")
    with pytest.raises(SourceUnavailable, match=r"acme_mail \(127\.0\.0\.1:\d+\): opening folder 'No Such Folder'"):
        mailbox.run(engine, store, carrier, source)


def test_connection_refused(server, engine, store, carrier, monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv(server.env_name(CONN_ID), server.airflow_conn_json(port=port))

    with pytest.raises(SourceUnavailable) as caught:
        mailbox.run(engine, store, carrier, SOURCE)

    assert str(caught.value) == (
        f"mailbox acme_mail (127.0.0.1:{port}): cannot connect: ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert rows(engine) == []


def test_server_that_never_answers_times_out(server, engine, store, carrier, monkeypatch):
    with socket.socket() as silent:  # accepts TCP connections (backlog), never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        monkeypatch.setenv(
            server.env_name(CONN_ID), server.airflow_conn_json(port=port, extra={"use_ssl": False, "timeout": 0.3})
        )

        with pytest.raises(SourceUnavailable, match=rf"\(127\.0\.0\.1:{port}\): timed out after 0\.3s"):
            mailbox.run(engine, store, carrier, SOURCE)
    assert socket.getdefaulttimeout() is None


def test_wrong_password(server, engine, store, carrier, monkeypatch):
    monkeypatch.setenv(server.env_name(CONN_ID), server.airflow_conn_json(password="not-the-password"))

    with pytest.raises(SourceUnavailable) as caught:
        mailbox.run(engine, store, carrier, SOURCE)

    message = str(caught.value)
    assert message.startswith(f"mailbox acme_mail (127.0.0.1:{server.port}): login refused for user 'cdrtest'")
    assert "Authentication failed" in message and "not-the-password" not in message
    assert rows(engine) == []


def test_connection_not_defined(engine, store, carrier):
    source = MailboxSource(conn_id="no_such_mailbox", senders=("*",))
    with pytest.raises(ConfigurationError, match="mailbox connection 'no_such_mailbox' is not defined"):
        mailbox.run(engine, store, carrier, source)
