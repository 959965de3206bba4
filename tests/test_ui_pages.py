"""The cdrflow page (``/cdr/operator/``) over HTTP against the uvicorn API server: who may open it,
and what an operator sees on it (a failed file with its reason and quarantine, the raw line and
the failed checks, the delivery calendar's gaps, billing runs and report requests with working
links) and the prefilled re-run forms it links to.

Outside Airflow the page takes an operator token in ``X-Auth-Token``; behind Airflow's login it is
tested in a real browser by tests/test_ui_browser.py."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text
from tests.airflow_runs import airflow_db, dagbag
from tests.api.conftest import api, api_engine, api_server, auth, make_token
from tests.test_billrun import billing
from tests.test_loader import ROW, register, rows
from tests.test_reprocessing import BROKEN

from cdrflow.api import ui_triggers
from cdrflow.loading.transaction import load_file
from conftest import add_carrier

pytestmark = pytest.mark.integration

PAGE = "/operator"


@pytest.fixture
def operator(make_token) -> dict[str, str]:
    return auth(make_token(None))


@pytest.fixture
def failed_file(api_engine, store) -> int:
    """A file of carrier acme (rejection threshold 0) with one line that fails its checks: failed."""
    add_carrier(api_engine, "acme", file_type="asterisk_csv", reject_threshold=0.0)
    add_carrier(api_engine, "monthly-co", file_type="asterisk_csv", delivery="monthly")
    file_id = register(api_engine, store, rows("u1", "u2") + BROKEN, "Master-bad.csv").file_id
    assert load_file(api_engine, store, file_id).status == "failed"
    return file_id


def html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def hrefs(body: str, contains: str = "") -> list[str]:
    return [unescape(h) for h in re.findall(r'href="([^"]+)"', body) if contains in unescape(h)]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_the_page_refuses_anyone_but_an_operator(api, make_token, failed_file):
    page = html(api.get(PAGE + "/"), 401)
    assert "Airflow" in page and "X-Auth-Token" in page
    # outside Airflow nobody can check an Airflow session: a cookie opens nothing
    assert api.get(PAGE + "/", cookies={"_token": "eyJhbGciOiJIUzUxMiJ9.e30.x"}).status_code == 401
    assert api.get(PAGE + "/files/1", headers={"Authorization": "Bearer something"}).status_code == 401
    assert api.get(PAGE + "/", headers=auth("not-a-token")).status_code == 401
    assert "for operators" in html(api.get(PAGE + "/", headers=auth(make_token("acct1"))), 403)
    # a token in the query string is not taken (it would end up in links and logs)
    assert api.get(PAGE + "/", params={"auth_token": make_token(None)}).status_code == 401
    assert html(api.get(PAGE + "/", headers=auth(make_token(None)))).count("Master-bad.csv") == 1
    assert api.get(PAGE, headers=auth(make_token(None)), follow_redirects=False).status_code == 307
    # the seed APIs' documents do not list the pages
    assert not [p for p in api.get("/openapi.json").json()["paths"] if p.startswith(PAGE)]


def test_the_overview_shows_the_failed_file_with_its_reason_and_quarantine(api, operator, failed_file):
    page = html(api.get(PAGE + "/", headers=operator))
    row = re.search(rf'<tr data-file-id="{failed_file}">(.*?)</tr>', page, re.S)
    assert row, page
    cells = row.group(1)
    assert "Master-bad.csv" in cells and "status-failed" in cells and "acme" in cells
    assert "rejection threshold" in cells or "threshold" in cells, cells  # the reason of its status
    assert re.search(rf'href="/cdr/operator/files/{failed_file}#quarantine">1</a>', cells)
    # files by status per carrier: acme has one failed file, linked to the list of them
    assert hrefs(page, "/cdr/operator/files?carrier=acme&status=failed")
    # the top rejection reasons name the failed check
    reasons = re.search(r'<table class="reasons">(.*?)</table>', page, re.S).group(1)
    assert "start_time" in reasons or "timestamp" in reasons, reasons
    # the re-runs: reprocess it, or load it anyway with its quarantine kept
    forms = hrefs(page, "/cdr/operator/trigger/cdrflow_process?")
    assert {"file_ids": str(failed_file)}.items() <= query_of(forms[0]).items()
    assert {"accept_file_ids": str(failed_file)}.items() <= query_of(forms[1]).items()


def test_the_file_page_shows_the_raw_line_and_the_failed_checks(api, operator, failed_file):
    page = html(api.get(f"{PAGE}/files/{failed_file}", headers=operator))
    assert "Master-bad.csv" in page and "status-failed" in page
    line = re.search(r'<tr data-line="3">(.*?)</tr>', page, re.S)
    assert line, page
    raw = BROKEN.decode().strip()
    assert unescape(re.search(r'<td class="raw">(.*?)</td>', line.group(1), re.S).group(1)).strip() == raw
    checks = re.findall(r'<div class="check">(.*?)</div>', line.group(1))
    assert checks and all(c.strip() for c in checks)
    assert "status failed" in page  # the processing log
    accept = hrefs(page, "accept_file_ids=")
    assert query_of(accept[0])["accept_file_ids"] == str(failed_file)
    day = query_of(hrefs(page, "day=")[0])
    assert day["carrier"] == "acme" and day["day"] == datetime.now(UTC).date().isoformat()
    assert "no file has id 999999" in html(api.get(f"{PAGE}/files/999999", headers=operator), 404)
    assert html(api.get(f"{PAGE}/files/abc", headers=operator), 400)
    assert html(api.get(f"{PAGE}/files/{2**63}", headers=operator), 400)


def test_a_files_day_is_the_day_in_its_carriers_time_zone(api, operator, failed_file, api_engine):
    with api_engine.begin() as conn:
        conn.execute(text("""UPDATE carriers SET config = '{"timezone": "Pacific/Kiritimati"}' WHERE code = 'acme'"""))
        uploaded = conn.execute(text("SELECT uploaded_date FROM cdr_files WHERE id = :i"), {"i": failed_file}).scalar()
    page = html(api.get(f"{PAGE}/files/{failed_file}", headers=operator))
    assert (
        query_of(hrefs(page, "day=")[0])["day"]
        == uploaded.astimezone(ZoneInfo("Pacific/Kiritimati")).date().isoformat()
    )


def test_the_file_list_filters_by_status_carrier_and_day(api, operator, failed_file, store, api_engine):
    loaded = register(api_engine, store, rows("v1", "v2"), "Master-good.csv").file_id
    assert load_file(api_engine, store, loaded).status == "loaded"
    ids = lambda body: [int(i) for i in re.findall(r'<tr data-file-id="(\d+)">', body)]  # noqa: E731
    assert ids(html(api.get(PAGE + "/files", headers=operator))) == [loaded, failed_file]
    assert ids(html(api.get(PAGE + "/files", headers=operator, params={"status": "failed"}))) == [failed_file]
    assert ids(html(api.get(PAGE + "/files", headers=operator, params={"carrier": "other"}))) == []
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    assert ids(html(api.get(PAGE + "/files", headers=operator, params={"day": yesterday}))) == []
    assert "none of" in html(api.get(PAGE + "/files", headers=operator, params={"status": "lost"}), 400)
    assert html(api.get(PAGE + "/files", headers=operator, params={"day": "2026-13-01"}), 400)


def test_the_calendar_marks_the_days_a_daily_carrier_sent_nothing(api, operator, failed_file, api_engine):
    today = datetime.now(UTC).date()
    with api_engine.begin() as conn:
        conn.execute(text("UPDATE carriers SET created_at = now() - interval '5 days'"))
        conn.execute(
            text("UPDATE cdr_files SET uploaded_date = :d WHERE id = :i"),
            {"d": datetime.combine(today - timedelta(days=3), datetime.min.time(), UTC), "i": failed_file},
        )
        # calls of acme two days ago, but no file registered that day: delivered all the same
        conn.execute(
            text("INSERT INTO call_days (carrier, day, calls) VALUES ('acme', :d, 7)"), {"d": today - timedelta(days=2)}
        )
    page = html(api.get(PAGE + "/calendar", headers=operator))

    def cell(carrier: str, day: date) -> str:
        row = re.search(rf'<tr data-carrier="{carrier}">(.*?)</tr>', page, re.S).group(1)
        return re.search(rf'<td class="([^"]*)" data-day="{day}"', row).group(1)

    assert [cell("acme", today - timedelta(days=n)) for n in range(6, -1, -1)] == [
        "",  # before the carrier was configured
        "gap",
        "gap",
        "attention",  # its (failed) file
        "got",  # calls, no file
        "gap",
        "future",  # today is not over
    ]
    assert "gap" not in {cell("monthly-co", today - timedelta(days=n)) for n in range(1, 5)}
    rerun = [h for h in hrefs(page, "day=") if "carrier=acme" in h]
    assert {"carrier": "acme", "day": (today - timedelta(days=5)).isoformat()}.items() <= query_of(rerun[0]).items()


def test_billing_runs_show_their_totals_and_working_invoice_links(api, operator, billing, tmp_path):
    invoice = tmp_path / "invoice-1001.csv"
    invoice.write_bytes(b"account,amount\n1001,0.3000\n")
    with billing.begin() as conn:
        run_id = conn.execute(
            text(
                "INSERT INTO billruns (kind, period_start, period_end, scope, version, status, finished_at, calls, "
                "rated, totals) VALUES ('daily', '2026-11-01', '2026-11-02', 'all', 1, 'closed', now(), 3, 3, "
                """'{"GBP": "0.3000"}') RETURNING id"""
            )
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO billrun_artifacts (billrun_id, account_id, kind, uri, bytes, sha1) "
                "VALUES (:b, '1001', 'invoice', :u, :n, :s)"
            ),
            {
                "b": run_id,
                "u": invoice.as_uri(),
                "n": invoice.stat().st_size,
                "s": hashlib.sha1(invoice.read_bytes()).hexdigest(),
            },
        )
        conn.execute(
            text(
                "INSERT INTO billruns (kind, period_start, period_end, scope, version, status, finished_at, error) "
                "VALUES ('monthly', '2026-10-01', '2026-11-01', '1002', 1, 'failed', now(), 'the deck was missing')"
            )
        )
    page = html(api.get(PAGE + "/billing", headers=operator))
    row = re.search(rf'<tr data-billrun="{run_id}">(.*?)</tr>', page, re.S).group(1)
    assert "0.3000 GBP" in row and "status-closed" in row
    [link] = hrefs(row, "/downloads/")
    assert httpx.get(link, timeout=30).content == invoice.read_bytes()
    assert {"period": "2026-11-01"} == {
        k: v
        for k, v in query_of(hrefs(row, "/trigger/cdrflow_billing_daily?")[0]).items()
        if k in ("period", "account")
    }
    assert "the deck was missing" in page
    again = query_of(hrefs(page, "/trigger/cdrflow_billing_monthly?")[0])
    assert (again["period"], again["account"]) == ("2026-10", "1002")


def test_report_requests_show_their_status_and_a_working_link(api, operator, api_engine, tmp_path):
    report = tmp_path / "report.csv"
    report.write_bytes(b"call_id\nc1\n")
    now = datetime.now(UTC)
    with api_engine.begin() as conn:
        for name, status, expires in (("done", 2, now + timedelta(days=3)), ("old", 2, now - timedelta(hours=1))):
            conn.execute(
                text(
                    "INSERT INTO report_requests (account_id, start_time, end_time, report_name, status, artifact_uri, "
                    "bytes, sha256, row_count, completed_at, expires_at) VALUES ('A1', :s, :e, :n, :st, :u, :b, :h, 1, "
                    ":c, :x)"
                ),
                {
                    "s": now - timedelta(days=2),
                    "e": now - timedelta(days=1),
                    "n": name,
                    "st": status,
                    "u": report.as_uri(),
                    "b": 12,
                    "h": hashlib.sha256(report.read_bytes()).hexdigest(),
                    "c": now - timedelta(days=1),
                    "x": expires,
                },  # fmt: skip
            )
        conn.execute(
            text(
                "INSERT INTO report_requests (start_time, end_time, report_name, status, failure_reason) "
                "VALUES (:s, :e, 'broken', 3, 'the artifact store was full')"
            ),
            {"s": now - timedelta(days=2), "e": now - timedelta(days=1)},
        )
    page = html(api.get(PAGE + "/reports", headers=operator))
    rows = {name: re.search(rf"<td>{name}</td>(.*?)</tr>", page, re.S).group(1) for name in ("done", "old", "broken")}
    assert "status-complete" in rows["done"] and "status-expired" in rows["old"] and "status-failed" in rows["broken"]
    assert "the artifact store was full" in rows["broken"]
    [link] = hrefs(rows["done"], "/downloads/")
    assert httpx.get(link, timeout=30).content == report.read_bytes()
    assert not hrefs(rows["old"], "/downloads/")


def test_the_trigger_form_is_prefilled_and_names_only_the_dags_fields(api, operator):
    rerun = ui_triggers.carrier_day("acme", date(2026, 11, 1))
    page = html(api.get(rerun.url(PAGE, back="/cdr/operator/calendar"), headers=operator))
    assert re.search(r'id="param-carrier" name="carrier" data-param="carrier" value="acme"', page)
    assert re.search(r'id="param-day" name="day" data-param="day" value="2026-11-01"', page)
    assert re.search(r'id="param-file_ids" name="file_ids" data-param="file_ids" value=""', page)
    assert "Re-run acme&#39;s files of 2026-11-01" in page and 'href="/cdr/operator/calendar"' in page
    # outside Airflow (a token) the form says triggering needs Airflow's login, and has no button
    assert 'id="submit"' not in page and "Log in to Airflow" in page
    assert "has no field &#x27;period&#x27;" in html(
        api.get(PAGE + "/trigger/cdrflow_process?period=2026-11", headers=operator), 400
    )
    assert html(api.get(PAGE + "/trigger/some_other_dag", headers=operator), 404)
    elsewhere = html(api.get(PAGE + "/trigger/cdrflow_process?back=https://evil.example/", headers=operator))
    assert "evil.example" not in elsewhere


def test_ids_are_written_as_the_forms_take_them():
    assert ui_triggers.ids_text([12, 3, 4, 5, 7, 10, 11, 4]) == "3-5, 7, 10-12"
    assert ui_triggers.reprocess([9]).values == {"file_ids": "9"}


def test_the_forms_send_only_params_the_dags_have(dagbag):
    """The page's trigger forms name the DAGs' own params (a renamed param would otherwise be
    sent and ignored)."""
    for form in ui_triggers.FORMS.values():
        dag = dagbag.get_dag(form.dag_id)
        assert dag is not None, form.dag_id
        missing = {f.name for f in form.fields} - set(dag.params)
        assert not missing, f"{form.dag_id} has no params {missing}"
