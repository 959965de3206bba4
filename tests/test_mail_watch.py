"""Fresh data from mailboxes: IMAP IDLE in the triggerer starts the mailbox collector when mail
arrives.

The trigger runs here as the triggerer runs it (its ``run()`` async generator in an event loop)
against a real Dovecot on loopback: a mail appended to the mailbox makes it fire within seconds,
once; it survives IDLE re-issues and a dropped connection; a server without IDLE and a refused
login are logged once and left to the one-minute poll. The DAG tests check that the mailbox
collector is scheduled on the watched asset or its one-minute fallback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from airflow.sdk.module_loading import import_string

from cdrflow.config.carrier_file import MailboxSource
from cdrflow.dev.generate import asterisk_bytes
from cdrflow.orchestration.mail_watch import NewMailTrigger, mailbox_mail_asset
from cdrflow.sources import mailbox
from servers.dovecot import free_port, imap_server, running_dovecot

pytestmark = pytest.mark.integration

CONN_ID = "watch_imap"
SOURCE = {"kind": "mailbox", "conn_id": CONN_ID, "senders": ["*@acme.example"], "attachments": ["*.csv"]}
WHERE = f"acme mailbox source {CONN_ID}/INBOX"
DAGS = Path(__file__).resolve().parents[1] / "dags"
TRIGGER_LOG = "cdrflow.orchestration.mail_watch"
NO_IDLE = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS MOVE\n"


def _carriers(path: Path, **overrides) -> str:
    carrier = {"code": "acme", "name": "ACME", "file_type": "asterisk_csv", "sources": [{**SOURCE, **overrides}]}
    path.write_text(yaml.safe_dump({"carriers": [carrier]}))
    return str(path)


def _mail(subject: str, sender: str = "cdr@acme.example") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "cdr@billing.example", subject
    msg.set_content("CDRs attached")
    msg.add_attachment(asterisk_bytes(5, seed=len(subject)), maintype="text", subtype="csv", filename=f"{subject}.csv")
    return msg


@pytest.fixture
def server(imap_server, monkeypatch):
    imap_server.reset()
    monkeypatch.setenv(imap_server.env_name(CONN_ID), imap_server.airflow_conn_json())
    return imap_server


class Watch:
    """The trigger running in the background of the test's event loop, its events collected with
    the moment they came."""

    def __init__(self, trigger: NewMailTrigger):
        self.trigger = trigger
        self.events: list[tuple[float, dict]] = []

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.events.append((time.monotonic(), event.payload))

    async def __aenter__(self) -> Watch:
        self.task = asyncio.create_task(self._consume())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def until(self, condition, seconds: float = 15.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert not self.task.done(), self.task.exception() if not self.task.cancelled() else "cancelled"
            assert time.monotonic() < deadline, "gave up waiting"
            await asyncio.sleep(0.05)

    async def watching(self) -> None:
        """Until the source is connected and idling (its first search is done)."""
        await self.until(lambda: WHERE in self.trigger._watched)
        await asyncio.sleep(0.3)

    async def next_event(self, after: int, seconds: float = 15.0) -> tuple[float, dict]:
        await self.until(lambda: len(self.events) > after, seconds)
        return self.events[after]


def _trigger(tmp_path: Path, **kwargs) -> NewMailTrigger:
    kwargs.setdefault("config_seconds", 0.2)
    return NewMailTrigger(carriers_file=_carriers(tmp_path / "carriers.yaml"), **kwargs)


def test_a_new_mail_fires_within_seconds_once_and_the_collector_takes_it(server, tmp_path, engine, store, carrier):
    server.append("INBOX", _mail("waiting"))  # there before the trigger started: announced once
    source = MailboxSource(**{k: v for k, v in SOURCE.items() if k != "kind"})
    latencies = []

    async def scenario() -> None:
        async with Watch(_trigger(tmp_path)) as watch:
            _, first = await watch.next_event(0)
            assert first == {"mailbox": WHERE, "carrier": "acme", "new": 1}
            await watch.watching()
            await asyncio.sleep(1.5)
            assert len(watch.events) == 1  # announced once, however long it waits

            # the collector takes it (its own connection moves it): nothing to announce
            found = await asyncio.to_thread(mailbox.run, engine, store, "acme", source)
            assert [c.outcome for c in found] == ["received"]
            await asyncio.sleep(1.5)
            assert len(watch.events) == 1

            for n in (1, 2):
                sent = time.monotonic()
                await asyncio.to_thread(server.append, "INBOX", _mail(f"new {n}"))
                at, event = await watch.next_event(n)
                latencies.append(at - sent)
                assert event["new"] == 1
            await asyncio.sleep(1.5)
            assert len(watch.events) == 3  # no event twice for one mail

    asyncio.run(scenario())
    assert max(latencies) < 5, latencies  # seconds from APPEND to the event
    print(f"IDLE: APPEND to event in {', '.join(f'{s:.2f}' for s in latencies)} s")


def test_idle_is_reissued_and_a_dropped_connection_reconnected(server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    trigger = _trigger(tmp_path, reissue_seconds=0.4)  # DONE and IDLE again every 0.4 s

    async def scenario() -> None:
        async with Watch(trigger) as watch:
            await watch.watching()
            await asyncio.sleep(2.5)  # five re-issues
            await asyncio.to_thread(server.append, "INBOX", _mail("after re-issues"))
            await watch.next_event(0, seconds=5)

            # the server drops every session of the user (as a restart or a failover would)
            kicked = await asyncio.to_thread(
                subprocess.run,
                ["doveadm", "-c", str(server.workdir / "dovecot.conf"), "kick", server.user],
                capture_output=True,
                text=True,
            )
            assert kicked.returncode == 0, kicked.stderr
            await watch.until(lambda: WHERE in trigger._problems, seconds=10)
            await watch.until(lambda: WHERE not in trigger._problems, seconds=15)  # connected again
            await asyncio.to_thread(server.append, "INBOX", _mail("after the drop"))
            _, event = await watch.next_event(1, seconds=10)
            assert event["new"] == 1  # the first mail, still there, is not announced again

    asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records if r.name == TRIGGER_LOG]
    assert said[0] == f"{WHERE} watched with IMAP IDLE"
    assert any(m.startswith(f"{WHERE} not watched: ") for m in said), said
    assert said[-1] == f"{WHERE} watched again (IMAP IDLE)"


def test_a_server_without_idle_is_left_to_the_poll_and_said_once(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    with running_dovecot(NO_IDLE) as plain:
        monkeypatch.setenv(plain.env_name(CONN_ID), plain.airflow_conn_json())
        trigger = _trigger(tmp_path, recheck_seconds=0.3)  # asks again every 0.3 s (an hour by default)

        async def scenario() -> None:
            async with Watch(trigger) as watch:
                await watch.until(lambda: WHERE in trigger._problems)
                await asyncio.to_thread(plain.append, "INBOX", _mail("polled"))
                await asyncio.sleep(2)
                assert watch.events == [] and not watch.task.done()  # no event, and still running

        asyncio.run(scenario())
    said = [r for r in caplog.records if r.name == TRIGGER_LOG]
    assert [r.levelno for r in said] == [logging.WARNING]  # once, though asked again several times
    assert "the server does not offer IDLE" in said[0].getMessage()
    assert "left to the one-minute collector run" in said[0].getMessage()


def test_a_refused_login_is_said_once_and_retried_until_it_works(server, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    monkeypatch.setenv(server.env_name(CONN_ID), server.airflow_conn_json(password="wrong"))
    trigger = _trigger(tmp_path)

    async def scenario() -> None:
        async with Watch(trigger) as watch:
            await watch.until(lambda: WHERE in trigger._problems)
            await asyncio.sleep(3.5)  # tried again after 1 s and 2 s
            assert watch.events == []
            monkeypatch.setenv(server.env_name(CONN_ID), server.airflow_conn_json())  # the password fixed
            await asyncio.to_thread(server.append, "INBOX", _mail("once it works"))
            _, event = await watch.next_event(0, seconds=15)
            assert event["new"] == 1

    asyncio.run(scenario())
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == TRIGGER_LOG]
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO, logging.INFO]
    assert "login refused for user 'cdrtest'" in said[0][1] and "one-minute collector run" in said[0][1]


def test_a_server_that_is_down_is_retried_with_back_off(tmp_path, monkeypatch, imap_server):
    monkeypatch.setenv(imap_server.env_name(CONN_ID), imap_server.airflow_conn_json(port=free_port()))
    trigger = _trigger(tmp_path)

    async def scenario() -> None:
        async with Watch(trigger) as watch:
            await watch.until(lambda: WHERE in trigger._problems)
            assert "cannot connect" in trigger._problems[WHERE]
            await asyncio.sleep(1)
            assert not watch.task.done()

    asyncio.run(scenario())


def _dags(*names: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return [bag.dags[n] for n in names]


def test_the_mailbox_collector_runs_on_new_mail_or_every_minute():
    from airflow.serialization.serialized_objects import DagSerialization

    [collect] = _dags("cdrflow_collect_mailbox")
    [asset] = collect.timetable.asset_condition.objects
    assert asset.name == "cdrflow_mailbox_mail"
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, NewMailTrigger)
    assert collect.timetable.timetable.delta.total_seconds() == 60  # the fallback poll
    stored = json.dumps(DagSerialization.to_dict(collect))  # what the triggerer gets
    assert "cdrflow.orchestration.mail_watch.NewMailTrigger" in stored
    classpath, kwargs = NewMailTrigger().serialize()
    rebuilt = import_string(classpath)(**kwargs)
    assert (rebuilt.carriers_file, rebuilt.reissue_seconds) == (None, 25 * 60)


@pytest.mark.parametrize("env", ["CDRFLOW_IMAP_IDLE", "CDRFLOW_WATCH_SECONDS"])
def test_imap_idle_can_be_turned_off(monkeypatch, env):
    monkeypatch.setenv(env, "0")
    from cdrflow.orchestration.collector_dag import schedule

    assert type(schedule("mailbox")).__name__ == "DeltaTriggerTimetable"
    assert mailbox_mail_asset().watchers == []
