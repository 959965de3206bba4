"""The billing DAGs run as Airflow runs them (dag.test(), tasks in-process): the completeness check,
the billrun and its invoice files; a carrier missing at the deadline is named on the billrun."""

from __future__ import annotations

import json
from pathlib import Path

from tests.airflow_runs import airflow_db, dagbag, pipeline
from tests.test_billrun import billing, day, q

from conftest import add_carrier


def test_the_daily_dag_bills_a_day_and_writes_its_invoices(pipeline, billing, day, tmp_path, monkeypatch):
    add_carrier(billing, "kazoo", "kazoo_json")  # delivers daily, sent nothing for 1 November
    monkeypatch.setenv("CDRFLOW_ARTIFACT_STORE", (tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("CDRFLOW_BILLING_DEADLINE_HOURS", "6")  # long passed for 1 November 2026
    dag = pipeline.dagbag.get_dag("cdrflow_billing_daily")
    assert [t.task_id for t in dag.tasks] == ["completeness", "billrun", "artifacts"]
    sensor = dag.get_task("completeness")
    assert sensor.mode == "reschedule"  # no worker slot held while it waits
    assert dag.timetable.expression == "0 2 * * *"
    assert pipeline.dagbag.get_dag("cdrflow_billing_monthly").timetable.expression == "0 2 1 * *"

    out = pipeline.run("cdrflow_billing_daily", {"period": "2026-11-01", "account": None})
    assert out.state == "success", out.tasks
    checked = out.xcom("completeness")[0]
    assert checked == {"period": "2026-11-01", "missing": {"kazoo": ["2026-11-01"]}}
    result = out.xcom("billrun")[0]
    assert result["calls"] == 11 and result["totals"] == {"EUR": "0.5400"} and result["new"]
    run = q(billing, "SELECT id, missing_carriers FROM billruns")
    assert run == [(result["billrun_id"], {"kazoo": ["2026-11-01"]})]
    made = out.xcom("artifacts")[0]
    assert made["invoices"] == 4
    summary = json.loads(Path(made["summary"].removeprefix("file://")).read_text())
    assert summary["billrun"]["missing_carriers"] == {"kazoo": ["2026-11-01"]}

    again = pipeline.run("cdrflow_billing_daily", {"period": "2026-11-01", "account": None})  # nothing new
    assert again.state == "success", again.tasks
    assert again.xcom("billrun")[0]["new"] is False
    assert again.xcom("artifacts")[0]["summary"] == made["summary"]
    assert q(billing, "SELECT count(*) FROM billruns")[0][0] == 1


def test_a_manual_run_for_one_account(pipeline, billing, day, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CDRFLOW_ARTIFACT_STORE", (tmp_path / "artifacts").as_uri())
    accounts = tmp_path / "accounts.yaml"  # the form's account choices come from the account file
    accounts.write_text("accounts: [{account_id: A1, name: A1, sell_deck: d, cycle: daily, currency: EUR}]\n")
    monkeypatch.setenv("CDRFLOW_ACCOUNTS_FILE", str(accounts))
    pipeline.dagbag = DagBag(dag_folder=str(Path(pipeline.dagbag.dag_folder) / "cdrflow_billing_daily.py"))
    assert pipeline.dagbag.get_dag("cdrflow_billing_daily").params.get_param("account").schema["enum"] == [None, "A1"]
    out = pipeline.run("cdrflow_billing_daily", {"period": "2026-11-01", "account": "A1"})
    assert out.state == "success", out.tasks
    assert out.xcom("completeness")[0]["missing"] == {}
    assert q(billing, "SELECT scope, totals FROM billruns") == [("A1", {"EUR": "0.4400"})]
    assert out.xcom("artifacts")[0]["invoices"] == 1
