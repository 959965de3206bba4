"""Notifications reach people: a processing run with failed or rejected files, a carrier late past
its deadline, a billing run that could not close each send one message through Airflow's
notifier mechanism. The DAGs run as Airflow runs them (dag.test()); the mail is read from a real
SMTP server on loopback (tests/servers/smtp.py), as it received it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from airflow.sdk import BaseNotifier
from sqlalchemy import text
from tests.airflow_runs import airflow_db, dagbag, pipeline
from tests.test_loader import q, register

from cdrflow.billing import decks
from cdrflow.billing.model import Deck, DeckVersion, Rate, Slot
from cdrflow.config import account_file, carrier_file
from cdrflow.config.errors import ConfigurationError
from cdrflow.orchestration import delivery_deadlines, notify
from cdrflow.warehouse import accounts
from conftest import add_carrier
from servers.smtp import smtp_server

JUNK = b"\x00\x01\x02 not a csv at all\n" * 3
NOT_ASTERISK = "binary data, not an Asterisk Master.csv"


@pytest.fixture
def mail(smtp_server, monkeypatch):
    """The SMTP provider's default connection points at the loopback server; mail goes to ops."""
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_server.airflow_conn_json())
    monkeypatch.setenv(notify.TO_ENV, "ops@cdrflow.example, billing@cdrflow.example")
    monkeypatch.setenv(notify.FROM_ENV, "cdrflow@cdrflow.example")
    monkeypatch.delenv(notify.NOTIFIER_ENV, raising=False)
    monkeypatch.delenv(notify.CONN_ENV, raising=False)
    return smtp_server


@pytest.fixture
def billing(engine):
    """The warehouse, its billing tables emptied after the test (the carriers and files by ``engine``)."""
    yield engine
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE billing_feed, invoice_lines, charges, billruns, accounts, rate_decks, rate_deck_versions, rates CASCADE"
            )
        )


def test_a_processing_run_with_rejected_files_sends_one_mail_naming_them(pipeline, engine, store, mail):
    pipeline.configure([{"code": "acme", "file_type": "asterisk_csv"}])
    add_carrier(engine, "acme", file_type="asterisk_csv")
    first = register(engine, store, JUNK, "junk.csv").file_id
    second = register(engine, store, JUNK + b"more junk\n", "junk2.csv").file_id

    run = pipeline.process()

    assert run.state == "failed"  # CDRFLOW_ATTENTION=fail, as before: the mail changes nothing there
    (got,) = mail.wait_for(1)  # one message for the run, not one per file
    assert got.mail_from == "cdrflow@cdrflow.example"
    assert sorted(got.rcpt_tos) == ["billing@cdrflow.example", "ops@cdrflow.example"]
    assert got.message["X-Cdrflow-Notification"] == "files"
    assert got.subject == (f"cdrflow: 2 file(s) failed or rejected (2 rejected) in processing run {run.dag_run.run_id}")
    body = got.text
    assert f"file {first} junk.csv (acme) rejected: {NOT_ASTERISK}" in body
    assert f"file {second} junk2.csv (acme) rejected: {NOT_ASTERISK}" in body
    assert f"cdrflow file {first}, cdrflow file {second}" in body  # how to look at them
    assert f'Reprocess file ids "{first}, {second}"' in body

    assert pipeline.process().state == "success"  # nothing new: no second mail
    assert len(mail.wait_for(2, seconds=0.5)) == 1


def test_a_late_carrier_is_mailed_once_and_one_that_delivered_is_not(pipeline, engine, store, mail):
    pipeline.configure(
        [
            # "00:00": the deadline has always passed today, whenever the test runs
            {
                "code": "acme",
                "name": "ACME Telecom",
                "file_type": "asterisk_csv",
                "timezone": "Asia/Tokyo",
                "deadline": "00:00",
            },
            {"code": "kazoo", "file_type": "kazoo_json", "deadline": "00:00"},
            {"code": "telco", "file_type": "telnyx_csv"},  # no deadline: never chased
        ]
    )
    for code, kind in (("acme", "asterisk_csv"), ("kazoo", "kazoo_json")):
        add_carrier(engine, code, file_type=kind)
    old = register(engine, store, b"yesterday's bytes\n", "Master-old.csv").file_id
    with engine.begin() as conn:  # acme's last file is two days old
        conn.execute(text("UPDATE cdr_files SET uploaded_date = now() - interval '2 days' WHERE id = :id"), {"id": old})
    register(engine, store, b"{}\n", "today.json", carrier="kazoo")  # kazoo delivered today

    run = pipeline.run("cdrflow_delivery_deadlines")

    assert run.state == "success", run.tasks
    (got,) = mail.wait_for(1)
    today = datetime.now(UTC).astimezone(delivery_deadlines.zone_of("Asia/Tokyo")).date()
    assert got.message["X-Cdrflow-Notification"] == "delivery"
    assert got.subject == f"cdrflow: carrier acme has not delivered on {today} by its deadline 00:00 Asia/Tokyo"
    assert f"carrier acme (ACME Telecom) has delivered no file on {today} by its deadline 00:00 Asia/Tokyo" in got.text
    assert f"its last file: file {old} Master-old.csv" in got.text
    alerts = q(engine, "SELECT carrier, day, last_file_id, notified_by FROM delivery_alerts")
    assert alerts == [
        ("acme", today, old, "SmtpNotifier (smtp_default) to ops@cdrflow.example, billing@cdrflow.example")
    ]

    again = pipeline.run("cdrflow_delivery_deadlines")  # 15 minutes later: still late, already told
    assert again.state == "success", again.tasks
    assert again.xcom("check_deadlines") == [{"notified": []}]
    assert len(mail.wait_for(2, seconds=0.5)) == 1


def test_a_billing_run_that_fails_mails_the_period_and_the_error(pipeline, billing, mail, tmp_path, monkeypatch):
    monkeypatch.setenv("CDRFLOW_ARTIFACT_STORE", (tmp_path / "artifacts").as_uri())
    uk = Rate("44", "UK", (Slot(0, Decimal("0.10"), 60, 60),), connect_fee=Decimal(0), call_type="I")
    with billing.begin() as conn:  # invoiced in USD from a EUR deck: the billrun refuses to close
        decks.store(
            conn, DeckVersion(Deck(name="retail", currency="EUR", kind="sell"), date(2026, 10, 1), (uk,)), "test"
        )
        accounts.upsert(
            conn,
            account_file.parse_account(
                {"account_id": "A1", "sell_deck": "retail", "cycle": "daily", "timezone": "UTC", "currency": "USD"}
            ),
        )

    run = pipeline.run("cdrflow_billing_daily", {"period": "2026-11-01", "account": None})

    assert run.state == "failed" and run.tasks["billrun"] == ["failed"], run.tasks
    (got,) = mail.wait_for(1)
    assert got.message["X-Cdrflow-Notification"] == "billing"
    assert got.subject == (
        "cdrflow: the daily billing run of 2026-11-01 (every account of the cycle) could not close: billrun failed"
    )
    assert "error: account A1 is invoiced in USD but its sell deck retail is in EUR" in got.text
    assert 'trigger cdrflow_billing_daily with Day "2026-11-01"' in got.text


class Recorder(BaseNotifier):
    """A notifier of the deployment's own, named by CDRFLOW_NOTIFIER: it keeps what it got."""

    template_fields = ("text", "kind")
    got: list[dict] = []

    def __init__(self, text: str, kind: str = "", **kwargs):
        super().__init__(**kwargs)
        self.text, self.kind = text, kind

    def notify(self, context) -> None:
        Recorder.got.append({"text": self.text, "kind": self.kind, "facts": context["cdrflow_facts"]})


def test_a_notifier_named_by_configuration_gets_the_same_message(pipeline, engine, store, mail, monkeypatch):
    monkeypatch.setenv(notify.NOTIFIER_ENV, f"{__name__}:Recorder")
    monkeypatch.setenv(
        notify.ARGS_ENV, json.dumps({"text": "{{ cdrflow_subject }}\n{{ cdrflow_body }}", "kind": "{{ cdrflow_kind }}"})
    )
    monkeypatch.setattr(Recorder, "got", [])
    pipeline.configure([{"code": "acme", "file_type": "asterisk_csv"}])
    add_carrier(engine, "acme", file_type="asterisk_csv")
    junk = register(engine, store, JUNK, "{{ ds }}.csv").file_id  # the message is sent, never rendered

    run = pipeline.process()

    assert run.state == "failed"
    (got,) = Recorder.got
    subject, body = got["text"].split("\n", 1)
    assert subject == f"cdrflow: 1 file(s) failed or rejected (1 rejected) in processing run {run.dag_run.run_id}"
    assert f"file {junk} {{{{ ds }}}}.csv (acme) rejected: {NOT_ASTERISK}" in body
    assert got["kind"] == "files"
    assert got["facts"]["files"][0]["id"] == junk
    assert mail.wait_for(1, seconds=0.5) == []  # the configured notifier instead of the mail, not both


def test_nothing_configured_is_logged_and_never_an_error(monkeypatch, caplog):
    for name in (notify.NOTIFIER_ENV, notify.TO_ENV):
        monkeypatch.delenv(name, raising=False)
    message = notify.Message("files", "cdrflow: test", "body")
    assert notify.send(message) == notify.NOT_CONFIGURED
    monkeypatch.setenv(notify.NOTIFIER_ENV, "no.such.module:Notifier")
    with pytest.raises(notify.NotificationError, match="cannot import it"):
        notify.send(message)
    assert notify.send_logged(message) is None  # what the report task and the billing callback use


def test_deadlines_are_in_the_carriers_zone(engine):
    add_carrier(engine, "acme", config={"timezone": "Europe/Berlin", "deadline": "09:00"})
    with engine.connect() as conn:
        before = delivery_deadlines.late_carriers(conn, datetime(2026, 11, 30, 7, 59, tzinfo=UTC))  # 08:59 Berlin
        after = delivery_deadlines.late_carriers(conn, datetime(2026, 11, 30, 8, 0, tzinfo=UTC))  # 09:00 Berlin
    assert before == []
    assert [(late.carrier, late.day, late.due) for late in after] == [
        ("acme", date(2026, 11, 30), datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (630, 'carrier a: deadline: a time of day in quotes, e.g. deadline: "09:00" (YAML read 630)'),
        ("24:00", "carrier a: deadline: '24:00' is not a time of day HH:MM"),
    ],
)
def test_a_deadline_the_carrier_file_cannot_mean_is_refused(value, problem):
    with pytest.raises(ConfigurationError, match="^" + problem.replace("(", r"\(").replace(")", r"\)")):
        carrier_file.parse_carrier({"code": "a", "file_type": "asterisk_csv", "deadline": value})
    assert carrier_file.parse_carrier(
        {"code": "a", "file_type": "asterisk_csv", "deadline": "9:30"}
    ).carrier.config == {"deadline": "09:30"}
