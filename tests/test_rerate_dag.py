"""The rerating DAG (``cdrflow_rerate``) as Airflow runs it (dag.test(), tasks in-process): an
operator re-rates a closed day with another deck version from a form; input that names nothing
fails the run with one line, first in the task's log, and changes nothing."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from tests.airflow_runs import airflow_db, dagbag, pipeline
from tests.test_billrun import billing, day, q

from cdrflow.api import ui_triggers
from cdrflow.billing.billrun import run_billrun

EMPTY = {"kind": "daily", "period": None, "account": None, "carrier": None, "deck_version": None}


def _version_id(engine, deck: str, effective: date) -> int:
    return q(
        engine,
        "SELECT id FROM rate_deck_versions WHERE deck = :d AND effective_from = :e",
        d=deck,
        e=effective,
    )[0][0]


def test_a_closed_day_is_re_rated_with_another_deck_version(pipeline, billing, day, tmp_path, monkeypatch):
    monkeypatch.setenv("CDRFLOW_ARTIFACT_STORE", (tmp_path / "artifacts").as_uri())
    first = run_billrun(billing, "daily", "2026-11-01")
    assert first.totals == {"EUR": Decimal("0.5400")}
    v2 = _version_id(billing, "retail", date(2026, 11, 2))  # UK at 0.20 a minute instead of 0.10

    out = pipeline.run("cdrflow_rerate", {**EMPTY, "period": "2026-11-01", "deck_version": str(v2)})
    assert out.state == "success", out.tasks
    result = out.xcom("rerate")[0]
    assert result["version"] == 2 and result["replaced"] > 0
    changes = {(c["account"], c["currency"]): (c["old"], c["new"]) for c in result["changes"]}
    # A1: two UK calls of 61 s (two minutes each) 0.20 -> 0.40, DE unchanged 0.04; TOKYO: 30 s of UK 0.10 -> 0.20
    assert changes[("A1", "EUR")] == ("0.4400", "0.8400")
    assert changes[("TOKYO", "EUR")] == ("0.1000", "0.2000")
    runs = q(billing, "SELECT version, status, totals, rerate ->> 'deck_version' FROM billruns ORDER BY version")
    assert runs == [(1, "closed", {"EUR": "0.5400"}, None), (2, "closed", {"EUR": "1.0400"}, str(v2))]
    current = q(billing, "SELECT sum(cost) FROM charges WHERE current AND side = 'sell' AND unrated_reason IS NULL")
    assert current[0][0] == Decimal("1.04")  # the old charges are kept, no longer current
    assert q(billing, "SELECT count(*) FROM charges WHERE NOT current")[0][0] == result["replaced"]
    assert out.xcom("artifacts")[0]["invoices"] >= 2  # the new version's invoice files


def test_input_that_names_nothing_fails_the_rerating_with_one_line(
    pipeline, billing, day, caplog, tmp_path, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import ParamValidationError

    run_billrun(billing, "daily", "2026-11-01")
    # the form's choices come from the account and carrier files; GHOST and ghost are in the
    # files but not in the warehouse (a file edited, not synced)
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts: [{account_id: A1, name: A1, sell_deck: retail, cycle: daily, currency: EUR},"
        " {account_id: GHOST, name: Ghost, sell_deck: retail, cycle: daily, currency: EUR}]\n"
    )
    monkeypatch.setenv("CDRFLOW_ACCOUNTS_FILE", str(accounts))
    pipeline.configure([{"code": "acme", "file_type": "asterisk_csv"}, {"code": "ghost", "file_type": "asterisk_csv"}])
    pipeline.dagbag = DagBag(dag_folder=str(Path(pipeline.dagbag.dag_folder) / "cdrflow_rerate.py"))
    assert pipeline.dagbag.get_dag("cdrflow_rerate").params.get_param("account").schema["enum"] == [None, "A1", "GHOST"]
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="cdrflow")
    asked = {
        "account": ({"period": "2026-11-01", "account": "GHOST"}, "Only this account: unknown account 'GHOST'"),
        "carrier": ({"period": "2026-11-01", "carrier": "ghost"}, "Only this carrier: unknown carrier 'ghost'"),
        "both": (
            {"period": "2026-11-01", "account": "A1", "carrier": "acme"},
            "Only this account and Only this carrier: choose one of them",
        ),
        "version": ({"period": "2026-11-01", "deck_version": "999999"}, "Deck version: no deck version has id 999999"),
        "period": ({"period": "2026-10-20"}, "nothing to rerate: the daily period 2026-10-20 has no closed billrun"),
        "month": ({"kind": "monthly", "period": "2026-11"}, "nothing to rerate: the monthly period 2026-11-01"),
    }
    for what, (params, message) in asked.items():
        caplog.clear()
        out = pipeline.run("cdrflow_rerate", {**EMPTY, **params})
        assert out.state == "failed", what
        assert out.tasks == {"rerate": ["failed"], "artifacts": ["upstream_failed"]}, what
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("cdrflow")]
        assert errors and errors[0].startswith(f"nothing done: {message}"), (what, errors[:2])
    assert q(billing, "SELECT count(*) FROM billruns WHERE version > 1")[0][0] == 0  # nothing re-rated
    with pytest.raises(ParamValidationError, match="'acmee' is not one of"):  # a typo never becomes a run
        pipeline.run("cdrflow_rerate", {**EMPTY, "period": "2026-11-01", "carrier": "acmee"})
    with pytest.raises(ParamValidationError, match="period"):
        pipeline.run("cdrflow_rerate", {**EMPTY, "period": "November"})


def test_the_billing_page_links_a_closed_run_to_the_prefilled_rerating_form(pipeline):
    dag = pipeline.dagbag.get_dag("cdrflow_rerate")
    form = ui_triggers.FORMS["cdrflow_rerate"]
    assert {f.name for f in form.fields} == set(dag.params)
    link = ui_triggers.rerate_period("monthly", "2026-11", "A1")
    assert link.dag_id == "cdrflow_rerate"
    assert link.values == {"kind": "monthly", "period": "2026-11", "account": "A1"}
    assert not dag.params.get_param("period").has_value  # required: no default, a red star in the form
