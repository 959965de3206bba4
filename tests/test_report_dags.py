"""The report DAGs as Airflow runs them (dag.test(), tasks in-process), and the trigger that wakes
``cdrflow_reports`` when a request is created."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.airflow_runs import airflow_db, dagbag, pipeline
from tests.test_reports import DAY, NOW, add_call, new_request, reports, status_of

from cdrflow.orchestration import reports_dag
from cdrflow.reports import requests


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "artifacts"
    monkeypatch.setenv("CDRFLOW_ARTIFACT_STORE", folder.as_uri())
    return folder


def test_the_dags_shape_and_schedules(pipeline):
    dag = pipeline.dagbag.get_dag("cdrflow_reports")
    assert [t.task_id for t in dag.tasks] == ["plan", "build", "summary"]
    [asset] = dag.timetable.asset_condition.objects
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, reports_dag.PendingReportsTrigger)
    assert dag.timetable.timetable.expression == reports_dag.SWEEP  # the sweep
    housekeeping = pipeline.dagbag.get_dag("cdrflow_reports_housekeeping")
    assert housekeeping.timetable.expression == reports_dag.HOUSEKEEPING


def test_a_run_builds_every_pending_request_and_retries_a_failed_one(pipeline, reports, store):
    with reports.begin() as conn:
        add_call(conn, "c1", "2026-11-01T10:00:00+00:00")
        made = [new_request(conn, DAY).id for _ in range(3)]
        failed = new_request(conn, DAY).id
        conn.execute(
            text("UPDATE report_requests SET status = 3, failure_reason = 'store was down' WHERE id = :id"),
            {"id": failed},
        )
    out = pipeline.run("cdrflow_reports", {"builders": 2, "retry_failed": None})
    assert out.state == "success", out.tasks
    assert out.xcom("plan")[0] == [1, 2]
    total = out.xcom("summary")[0]
    assert sorted(total["complete"]) == sorted(made) and total["failed"] == {} and total["rows"] == 3
    assert status_of(reports, failed).status == 3  # not named: left alone

    again = pipeline.run("cdrflow_reports", {"builders": 2, "retry_failed": f"{failed},\nnot-a-uuid"})
    assert again.state == "failed"  # a mistyped id is a one-line error, nothing done
    assert status_of(reports, failed).status == 3
    again = pipeline.run("cdrflow_reports", {"builders": 2, "retry_failed": failed})
    assert again.state == "success", again.tasks
    assert again.xcom("summary")[0]["complete"] == [failed] and status_of(reports, failed).status == 2
    assert len(list((store / "reports").glob("*.csv"))) == 4


def test_housekeeping_expires_old_reports(pipeline, reports, store):
    with reports.begin() as conn:
        add_call(conn, "c1", "2026-11-01T10:00:00+00:00")
        ident = new_request(conn, DAY).id
    assert pipeline.run("cdrflow_reports", {"builders": 1, "retry_failed": None}).state == "success"
    with reports.begin() as conn:
        conn.execute(text("UPDATE report_requests SET expires_at = now() - interval '1 day'"))
    out = pipeline.run("cdrflow_reports_housekeeping")
    assert out.state == "success", out.tasks
    assert out.xcom("expire")[0]["expired"] == [ident]
    assert status_of(reports, ident).status == 4 and list((store / "reports").glob("*.csv")) == []


def test_the_trigger_announces_each_new_request_once(reports, warehouse_url, monkeypatch):
    monkeypatch.setenv("CDRFLOW_DATABASE_URL", warehouse_url)
    trigger = reports_dag.PendingReportsTrigger(poll_seconds=0.2)
    classpath, kwargs = trigger.serialize()
    assert classpath == "cdrflow.orchestration.reports_dag.PendingReportsTrigger"
    assert reports_dag.PendingReportsTrigger(**kwargs).poll_seconds == 0.2

    with reports.begin() as conn:
        first = new_request(conn, DAY).id

    async def scenario() -> tuple[list, list]:
        stream = trigger.run()
        one = await asyncio.wait_for(stream.__anext__(), 10)
        with reports.begin() as conn:  # a second request while the first is still pending
            second = requests.create(conn, requests.validate(DAY, NOW), "A1").id
        two = await asyncio.wait_for(stream.__anext__(), 10)
        await stream.aclose()
        return [one.payload], [two.payload, second]

    [one], [two, second] = asyncio.run(scenario())
    assert one == {"requests": [first], "new": 1}
    assert two == {"requests": [second], "new": 1}  # the first is not announced again
