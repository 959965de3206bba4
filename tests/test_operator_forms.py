"""The trigger forms fit people: ids typed as ``3, 4, 10-12``, carriers and accounts as choices
from their files, days as dates, nothing required that is not; input that names nothing fails
the run with one line that says so, logged first; a carrier's day re-runs exactly its files."""

from __future__ import annotations

import logging

import pytest
import yaml
from sqlalchemy import text
from tests.airflow_runs import DAGS, airflow_db, dagbag, pipeline
from tests.test_attention import BAD_DATE, _task_records
from tests.test_loader import q, register, rows

from cdrflow.config.errors import CdrflowError
from cdrflow.orchestration.assets import FILES_RECEIVED
from cdrflow.orchestration.params import day_value, file_id_list, month_value
from conftest import add_carrier

# --- typed ids, days and months -------------------------------------------------------------------


def test_file_ids_are_typed_as_a_list_with_ranges():
    assert file_id_list("3, 4, 10-12") == [3, 4, 10, 11, 12]
    assert file_id_list(" 10 - 12 ;3 4,3") == [10, 11, 12, 3, 4]  # each once, in the order given
    assert file_id_list(["3", "10-11", 4]) == [3, 10, 11, 4]  # --conf lists still work
    assert file_id_list(7) == [7]
    assert file_id_list(None) == file_id_list("") == file_id_list("  ") == file_id_list([]) == []


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("3, x", "Reprocess file ids: 'x' is not a file id (a positive whole number) or a range like 10-12"),
        ("0", "Reprocess file ids: '0' is not a file id (a positive whole number) or a range like 10-12"),
        ("3.5", "Reprocess file ids: '3.5' is not a file id (a positive whole number) or a range like 10-12"),
        ("[3, 4]", "Reprocess file ids: '[3' is not a file id (a positive whole number) or a range like 10-12"),
        ("12-10", "Reprocess file ids: '12-10' is not a range of file ids (write the smaller id first, from 1)"),
        ("1-999999999", "Reprocess file ids: '1-999999999' names more than 100,000 file ids"),
        (True, "Reprocess file ids: True is not a file id (a positive whole number) or a range like 10-12"),
    ],
)
def test_garbage_in_the_ids_is_one_clear_line(typed, message):
    with pytest.raises(CdrflowError) as caught:
        file_id_list(typed, "Reprocess file ids")
    assert str(caught.value) == message


def test_days_and_months_read_what_the_date_picker_and_people_type():
    assert str(day_value("2026-11-01")) == "2026-11-01" and day_value("") is None and day_value(None) is None
    with pytest.raises(CdrflowError, match=r"^day: '1 Nov' is not a day \(write it as 2026-11-01\)$"):
        day_value("1 Nov")
    assert month_value("2026-11") == month_value("2026-11-17") == "2026-11" and month_value(None) is None


# --- the forms, as the DAG files build them when parsed ------------------------------------------


@pytest.fixture
def parsed(tmp_path, monkeypatch, airflow_db):
    """The DAG files parsed with a carrier file of two carriers and an account file of one
    daily and one monthly account."""
    from airflow.dag_processing.dagbag import DagBag

    carriers = tmp_path / "carriers.yaml"
    carriers.write_text(
        yaml.safe_dump(
            {
                "carriers": [
                    {"code": "acme", "name": "ACME Telecom", "file_type": "asterisk_csv"},
                    {"code": "kazoo", "file_type": "kazoo_json"},
                ]
            }
        )
    )
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts:\n"
        "  - {account_id: '2001', name: Wholesale, sell_deck: w, cycle: daily, currency: EUR}\n"
        "  - {account_id: '1001', name: Retail, sell_deck: r, cycle: monthly, currency: USD}\n"
    )
    monkeypatch.setenv("CDRFLOW_CARRIERS_FILE", str(carriers))
    monkeypatch.setenv("CDRFLOW_ACCOUNTS_FILE", str(accounts))
    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag


def _schema(bag, dag_id: str, name: str) -> dict:
    return bag.get_dag(dag_id).params.get_param(name).schema


def _required(schema: dict) -> bool:
    """What the Airflow 3 form marks with a red star: a type that does not include null."""
    kinds = schema.get("type")
    return bool(kinds) and (not isinstance(kinds, list) or "null" not in kinds)


def test_the_processing_form_takes_typed_ids_a_carrier_choice_and_a_date(parsed):
    for name in ("file_ids", "accept_file_ids"):
        schema = _schema(parsed, "cdrflow_process", name)
        assert schema["type"] == ["null", "string"] and not _required(schema)  # a text field, not a JSON editor
    carrier = _schema(parsed, "cdrflow_process", "carrier")
    assert carrier["enum"] == [None, "acme", "kazoo"] and not _required(carrier)
    assert carrier["values_display"] == {"null": "(every carrier)", "acme": "acme: ACME Telecom", "kazoo": "kazoo"}
    day = _schema(parsed, "cdrflow_process", "day")
    assert day["format"] == "date" and not _required(day)
    param = parsed.get_dag("cdrflow_process").params.get_param("carrier")
    assert param.resolve("acme") == "acme" and param.resolve(None) is None
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="'acmee' is not one of"):
        param.resolve("acmee")
    with pytest.raises(ParamValidationError, match="is not a 'date'"):
        parsed.get_dag("cdrflow_process").params.get_param("day").resolve("2026-11-31")


def test_the_billing_and_register_forms_offer_choices_from_the_files(parsed):
    daily, monthly = (_schema(parsed, f"cdrflow_billing_{k}", "period") for k in ("daily", "monthly"))
    assert daily["format"] == "date" and not _required(daily)
    assert not _required(monthly) and len(monthly["examples"]) == 12  # the last twelve months offered
    monthly_param = parsed.get_dag("cdrflow_billing_monthly").params.get_param("period")
    assert monthly_param.resolve("2026-11") == "2026-11" and monthly_param.resolve("2026-11-01") == "2026-11-01"
    assert _schema(parsed, "cdrflow_billing_daily", "account")["enum"] == [None, "2001"]  # daily accounts only
    assert _schema(parsed, "cdrflow_billing_monthly", "account")["enum"] == [None, "1001"]
    carrier = _schema(parsed, "cdrflow_register_folder", "carrier")
    assert carrier["enum"] == ["acme", "kazoo"] and _required(carrier)  # a carrier must be chosen here


def test_a_carrier_file_that_cannot_be_read_leaves_a_text_field_and_the_dags_import(tmp_path, monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    broken = tmp_path / "carriers.yaml"
    broken.write_text("carriers: [{code: acme}]\n")  # no file_type: refused
    monkeypatch.setenv("CDRFLOW_CARRIERS_FILE", str(broken))
    bag = DagBag(dag_folder=str(DAGS / "cdrflow_process.py"))
    assert not bag.import_errors
    carrier = _schema(bag, "cdrflow_process", "carrier")
    assert "enum" not in carrier and carrier["type"] == ["null", "string"]


def test_process_and_register_folder_describe_themselves_and_share_the_asset(dagbag):
    process, register = dagbag.get_dag("cdrflow_process"), dagbag.get_dag("cdrflow_register_folder")
    for dag in (process, register):
        assert dag.description and dag.doc_md
    announce = register.get_task("announce")
    assert [o.name for o in announce.outlets] == [FILES_RECEIVED.name]  # register_folder updates the asset ...
    waits_on = process.timetable.asset_condition.objects
    assert [a.name for a in waits_on] == [FILES_RECEIVED.name]  # ... that processing waits on


# --- input that names nothing ------------------------------------------------------------------------


def configure(pipeline, carriers: list[dict]) -> None:
    """Write the carrier file and parse the processing DAG again, as the DAG processor does:
    its carrier choices come from that file."""
    from airflow.dag_processing.dagbag import DagBag

    pipeline.configure(carriers)
    pipeline.dagbag = DagBag(dag_folder=str(DAGS / "cdrflow_process.py"))
    assert not pipeline.dagbag.import_errors


@pytest.fixture
def acme_loaded(pipeline, engine, store) -> dict[str, int]:
    """acme (and ghost, in the carrier file only) with one loaded file, and a duplicate of it."""
    configure(pipeline, [{"code": "acme", "file_type": "asterisk_csv"}, {"code": "ghost", "file_type": "asterisk_csv"}])
    add_carrier(engine, "acme", file_type="asterisk_csv")
    add_carrier(engine, "other", file_type="asterisk_csv")
    data = rows(*[f"a{i}" for i in range(5)])
    loaded = register(engine, store, data, "a.csv").file_id
    duplicate = register(engine, store, data, "again.csv").file_id
    other = register(engine, store, rows("o1"), "o.csv", carrier="other").file_id
    assert pipeline.process().state == "success"
    return {"loaded": loaded, "duplicate": duplicate, "other": other}


def _log(engine, file_id: int) -> str:
    return q(engine, "SELECT processing_log FROM cdr_files WHERE id = :i", i=file_id)[0][0]


def test_input_that_names_nothing_fails_the_run_with_one_line_logged_first(pipeline, engine, acme_loaded, caplog):
    loaded, duplicate, other = acme_loaded["loaded"], acme_loaded["duplicate"], acme_loaded["other"]
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="cdrflow")  # a CLI test may have left cdrflow at WARNING
    asked = {
        "carrier": ({"carrier": "ghost"}, "Only this carrier: unknown carrier 'ghost'; known carriers: acme, other"),
        "missing": ({"file_ids": f"{loaded}, 98-99"}, "Reprocess file ids: no file has id 98, 99"),
        "duplicate": (
            {"file_ids": str(duplicate)},
            f"file {duplicate} is a duplicate of file {loaded} (the same bytes) and is never loaded: "
            f"re-run file {loaded} instead",
        ),
        "carrier's": (
            {"carrier": "acme", "accept_file_ids": str(other)},
            f"file {other} is carrier other's, not acme's: empty Only this carrier, or leave file {other} out",
        ),
        "day": ({"carrier": "acme", "day": "2026-10-01"}, "Re-run this day: acme's day 2026-10-01 has no file"),
    }
    for what, (params, message) in asked.items():
        caplog.clear()
        run = pipeline.process(**params)
        assert run.state == "failed", what
        assert run.tasks["claim"] == ["failed"] and run.tasks["report"] == ["upstream_failed"], what
        first = _task_records(caplog, "claim")[0]
        assert first.levelno == logging.ERROR and first.getMessage().startswith(f"nothing done: {message}"), what
    assert "re-run" not in _log(engine, loaded)  # nothing was put back: the run refused as a whole
    assert q(engine, "SELECT status FROM cdr_files WHERE id = :i", i=loaded)[0][0] == "loaded"

    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="'acmee' is not one of"):  # a typo never becomes a run
        pipeline.process(carrier="acmee")


# --- a carrier's day ---------------------------------------------------------------------------------


def _at(data: bytes, day_hour: bytes) -> bytes:
    """ROW's three timestamps moved to ``day_hour`` (``b"2026-11-01 23:"``)."""
    return data.replace(b"2026-11-01 09:", day_hour)


def test_rerunning_a_carriers_day_reprocesses_exactly_that_days_files(pipeline, engine, store, caplog, monkeypatch):
    configure(
        pipeline,
        [
            {"code": "acme", "file_type": "asterisk_csv", "timezone": "America/New_York"},
            {"code": "other", "file_type": "asterisk_csv"},
        ],
    )
    add_carrier(engine, "acme", file_type="asterisk_csv", config={"timezone": "America/New_York"})
    add_carrier(engine, "other", file_type="asterisk_csv")
    morning = register(engine, store, rows("m1", "m2"), "morning.csv").file_id  # 1 Nov 09:00 New York
    late = register(engine, store, _at(rows("l1"), b"2026-11-01 23:"), "late.csv").file_id  # 2 Nov 04:00 UTC
    next_day = register(engine, store, _at(rows("n1"), b"2026-11-02 09:"), "next.csv").file_id
    broken = rows(*[f"b{i}" for i in range(4)]).replace(*BAD_DATE)
    failed = register(engine, store, rows("f1", "f2", "f3", "f4") + broken, "half.csv").file_id  # no calls loaded
    resent = register(engine, store, rows("m1", "m2"), "morning-again.csv").file_id  # a duplicate
    others = register(engine, store, rows("o1"), "other.csv", carrier="other").file_id  # 1 Nov, other carrier
    with engine.begin() as conn:  # delivered long ago, except the failed file: delivered on 1 November
        conn.execute(text("UPDATE cdr_files SET uploaded_date = '2026-10-20 12:00+00'"))
        conn.execute(text("UPDATE cdr_files SET uploaded_date = '2026-11-01 15:00+00' WHERE id = :i"), {"i": failed})
    monkeypatch.setenv("CDRFLOW_ATTENTION", "warn")
    assert pipeline.process().state == "success"
    assert q(engine, "SELECT status FROM cdr_files WHERE id = :i", i=failed)[0][0] == "failed"
    with engine.begin() as conn:  # the operator fixes acme's threshold, then re-runs acme's 1 November
        conn.execute(text("UPDATE carriers SET reject_threshold = 0.9 WHERE code = 'acme'"))
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="cdrflow")  # a CLI test may have left cdrflow at WARNING
    caplog.clear()

    run = pipeline.process(carrier="acme", day="2026-11-01")

    assert run.state == "success", run.tasks
    rerun = {
        i for i in (morning, late, next_day, failed, resent, others) if "operator re-run requested" in _log(engine, i)
    }
    assert rerun == {morning, late, failed}
    assert q(engine, "SELECT status, calls_loaded FROM cdr_files WHERE id = :i", i=failed)[0] == ("loaded", 4)
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 2 + 1 + 1 + 4 + 1
    said = [r.getMessage() for r in _task_records(caplog, "claim")]
    assert (
        said[0]
        == f"asked: only carrier acme; re-run acme's day 2026-11-01: files {morning}, {late}, {failed} (run {run.dag_run.run_id})"
    )
