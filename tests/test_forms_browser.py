"""Every trigger form an operator fills in, checked in a real browser inside a real Airflow.

Playwright drives Debian's Chromium against one ``airflow api-server`` + ``dag-processor`` +
``scheduler`` started for the module (:mod:`tests.browser_support`). For each DAG with params
(processing, daily and monthly billing, rerating, deck import, report building, folder registration) the
operator opens **Trigger** on the DAG's page and

(a) sees fields that fit people: no red star on an optional field, carriers and accounts as
    drop-downs listing the codes of the carrier and account files, days as date pickers, file
    ids typed as ``3, 4, 10-12`` without a JSON error;
(b) submits a valid input and the run succeeds with its effect in the warehouse (the files
    re-run, the carrier's day re-run, the billrun closed, the deck imported, the report built,
    the folder registered);
(c) submits an input that names nothing (a missing file id, a carrier or account of the file
    that the warehouse does not know, a drop or report request that does not exist, a folder
    outside the roots) and the run fails with a line that says so in the task's log (read
    through Airflow's REST API, as the UI shows it).

The collectors have no params: their form has nothing to fill in. Rerating
(``cdrflow_rerate``) is checked like billing: a closed day re-rated with another deck version.

Screenshots of each step are saved under ``$CDRFLOW_TEST_ARTIFACTS/forms_browser`` (default
``tests/artifacts/forms_browser``, ignored by git), with the Airflow processes' and tasks' logs.
The first trigger of each DAG unpauses it (the form's own "Unpause on trigger" box), so each
test submits its refused input first: the scheduled run that unpausing starts has nothing to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from itertools import count
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import text
from tests.browser_support import ARTIFACTS, USER, Airflow, chromium_path, started_airflow
from tests.test_billrun import billing, day
from tests.test_loader import register, rows
from tests.test_reports import DAY, add_call, new_request, reports, status_of

from cdrflow.loading.transaction import load_file
from conftest import add_carrier

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOTS = ARTIFACTS / "forms_browser"
CARRIERS = [  # ghost is in the carrier file only: the warehouse does not know it
    {"code": "acme", "name": "ACME Telecom", "file_type": "asterisk_csv"},
    {"code": "kazoo", "file_type": "kazoo_json"},
    {"code": "ghost", "file_type": "asterisk_csv"},
]
ACCOUNTS = (  # GHOST is in the account file only
    "accounts:\n"
    "  - {account_id: A1, name: Alpha, sell_deck: retail, cycle: daily, currency: EUR}\n"
    "  - {account_id: GHOST, name: Nobody, sell_deck: retail, cycle: daily, currency: EUR}\n"
    "  - {account_id: M1, name: Monthly, sell_deck: retail, cycle: monthly, currency: EUR}\n"
)
DECK = (
    "prefix,destination,call_type,call_sub_type,rate_per_minute,connect_fee,"
    "first_increment,next_increment,minimum_seconds,minimum_charge\n"
    "44,United Kingdom,I,,0.0100,0,60,60,0,0\n33,France,I,,0.0200,0,60,60,0,0\n"
)
_step = count(1)


# --- one Airflow and one logged-in browser for the module ----------------------------------------


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("forms")
    found = {k: base / k for k in ("home", "raw", "artifacts", "decks", "uploads")}
    for folder in found.values():
        folder.mkdir()
    return found


@pytest.fixture(scope="module")
def airflow(warehouse_url: str, places: dict[str, Path]) -> Iterator[Airflow]:
    chromium_path()
    (places["home"] / "accounts.yaml").write_text(ACCOUNTS)
    env = {
        "CDRFLOW_RAW_STORE": places["raw"].as_uri(),
        "CDRFLOW_ACCOUNTS_FILE": str(places["home"] / "accounts.yaml"),
        "CDRFLOW_ARTIFACT_STORE": places["artifacts"].as_uri(),
        "CDRFLOW_DECK_DROP": str(places["decks"]),
        "CDRFLOW_DECK_IMPORT_EVERY_MINUTES": "600",  # only the run that unpausing starts
        "CDRFLOW_REGISTER_ROOTS": str(places["uploads"]),
        "CDRFLOW_ATTENTION": "warn",
    }
    with started_airflow(places["home"], SHOTS / "airflow-logs", warehouse_url, CARRIERS, env) as started:
        yield started


@pytest.fixture(scope="module")
def page(airflow: Airflow):
    """A Chromium page logged in through Airflow's login page as the operator."""
    from playwright.sync_api import sync_playwright

    for old in SHOTS.glob("*.png"):
        old.unlink()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path()), args=["--no-sandbox"])
        try:
            opened = browser.new_page(viewport={"width": 1400, "height": 1000})
            opened.set_default_timeout(30_000)
            opened.goto(airflow.base + "/")
            opened.wait_for_url(re.compile(r"/auth/login"))
            opened.get_by_label(re.compile("username", re.I)).fill(USER)
            opened.get_by_label(re.compile("password", re.I)).fill(airflow.password)
            opened.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
            opened.wait_for_url(lambda url: "/auth/login" not in url)
            yield opened
        finally:
            browser.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{next(_step):02d}-{name}.png"), full_page=True)


# --- the trigger form ----------------------------------------------------------------------------


class Form:
    """Airflow's trigger form of a DAG (the "Trigger Dag" dialog), as a person sees it."""

    def __init__(self, page, airflow: Airflow, dag_id: str):
        self.page, self.airflow, self.dag_id = page, airflow, dag_id
        page.goto(f"{airflow.base}/dags/{dag_id}")
        page.get_by_role("button", name=re.compile("trigger", re.I)).first.click()
        self.dialog = page.get_by_role("dialog")
        self.dialog.get_by_text(f"Trigger Dag - {dag_id}").wait_for()

    def field(self, name: str):
        """The form row of param ``name`` (its label, widget and help)."""
        widget = f'[id="element_{name}"], [id="number-input:element_{name}"]'
        return self.dialog.locator('[data-scope="field"][data-part="root"]', has=self.page.locator(widget)).first

    def required(self, name: str) -> bool:
        """Whether the label carries the red star."""
        label = self.field(name).locator("label").first
        return label.get_attribute("data-required") is not None or label.locator('[aria-hidden="true"]').count() > 0

    def input_type(self, name: str) -> str | None:
        return self.dialog.locator(f'[id="element_{name}"]').get_attribute("type")

    def is_text_field(self, name: str) -> bool:
        """A plain one-line text input (not Airflow's JSON editor, not a drop-down)."""
        element = self.dialog.locator(f'[id="element_{name}"]')
        return element.evaluate("e => e.tagName") == "INPUT" and self.input_type(name) in (None, "text")

    def choices(self, name: str) -> list[str]:
        """The entries of drop-down ``name`` (opened, read, closed)."""
        self.dialog.locator(f'[id="element_{name}"]').click()
        options = self.page.get_by_role("option")
        options.first.wait_for()
        found = [o.inner_text() for o in options.all()]
        self.dialog.get_by_text(f"Trigger Dag - {self.dag_id}").click()  # closes the list (Escape: the dialog)
        options.first.wait_for(state="detached")
        return found

    def choose(self, name: str, label: str) -> None:
        self.dialog.locator(f'[id="element_{name}"]').click()
        self.page.get_by_role("option", name=label, exact=True).click()

    def type(self, name: str, value: str) -> None:
        self.dialog.locator(f'[id="element_{name}"]').fill(value)

    def errors(self) -> list[str]:
        return [t.strip() for t in self.dialog.locator('[data-part="error-text"]').all_inner_texts() if t.strip()]

    def trigger(self, what: str) -> str:
        """Submit; the UI opens the new run's page. Returns the run id."""
        assert not self.errors(), self.errors()
        shot(self.page, f"{self.dag_id}-{what}-filled")
        self.dialog.get_by_role("button", name=re.compile(r"^\s*Trigger$")).click()
        self.page.wait_for_url(re.compile(rf"/dags/{self.dag_id}/runs/"))
        return unquote(self.page.url.split("/runs/", 1)[1].split("?")[0].rstrip("/"))


def submitted(
    page, airflow: Airflow, dag_id: str, what: str, fill: Callable[[Form], None], expect: str
) -> tuple[str, dict]:
    """Open the form, fill it, trigger it and wait for the run to end in state ``expect``; the
    run's page (with its final state) is saved as a screenshot."""
    form = Form(page, airflow, dag_id)
    fill(form)
    run_id = form.trigger(what)
    run = airflow.wait_for_run(dag_id, run_id)
    airflow.idle(dag_id)  # and the scheduled run that unpausing started, if any
    page.reload()
    page.get_by_text(re.compile(expect, re.I)).first.wait_for()
    shot(page, f"{dag_id}-{what}-{run['state']}")
    assert run["state"] == expect, (run, airflow.task_states(dag_id, run_id))
    assert run["triggering_user_name"] == USER
    return run_id, run


def refused_with(airflow: Airflow, dag_id: str, run_id: str, task_id: str, message: str) -> list[str]:
    """The failed task's log holds ``message``; it failed once, without retries."""
    states = airflow.task_states(dag_id, run_id)
    assert states[task_id] == "failed", states
    lines = airflow.task_log(dag_id, run_id, task_id)
    said = [line for line in lines if message in line]
    assert said, f"{message!r} not in the log of {task_id}:\n" + "\n".join(lines[-40:])
    return said


def q(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


# --- processing ----------------------------------------------------------------------------------


@pytest.fixture
def loaded_files(engine, places) -> dict[str, int]:
    """Three loaded files of acme (1 November), in the raw store the Airflow tasks read."""
    from cdrflow.intake.rawstore import RawStore

    add_carrier(engine, "acme", file_type="asterisk_csv")
    add_carrier(engine, "kazoo", file_type="kazoo_json")
    store = RawStore(places["raw"].as_uri())
    ids = {}
    for name, uids in (("a.csv", ("a1", "a2")), ("b.csv", ("b1",)), ("c.csv", ("c1", "c2", "c3"))):
        ids[name] = register(engine, store, rows(*uids), name).file_id
        assert load_file(engine, store, ids[name]).status == "loaded"
    return ids


def _rerun_by(engine, run_id: str) -> set[int]:
    return {
        i
        for (i,) in q(
            engine,
            "SELECT id FROM cdr_files WHERE status = 'loaded' AND position(:said in processing_log) > 0",
            said=f"operator re-run requested (run {run_id})",
        )
    }


def test_the_processing_form(airflow, page, engine, loaded_files):
    a, b, c = loaded_files["a.csv"], loaded_files["b.csv"], loaded_files["c.csv"]
    form = Form(page, airflow, "cdrflow_process")
    # (a) what the operator sees
    for name in ("file_ids", "accept_file_ids"):
        assert form.is_text_field(name) and not form.required(name), name  # typed ids, not a JSON editor
    assert form.choices("carrier") == ["(every carrier)", "acme: ACME Telecom", "kazoo", "ghost"]  # the file's
    assert form.input_type("day") == "date"  # a date picker
    for name in ("carrier", "day", "files_per_batch"):
        assert not form.required(name), name
    form.type("file_ids", "3, 4, 10-12")
    form.type("accept_file_ids", f"{a}, {b}-{c}")
    for name in ("file_ids", "accept_file_ids"):  # no JSON error under the typed ids
        assert form.field(name).get_by_text(re.compile("json|invalid", re.I)).count() == 0, name
    assert not form.errors()
    shot(page, "cdrflow_process-form")

    # (c) input that names nothing: a missing file id; a carrier of the file the warehouse lacks
    run_id, _ = submitted(
        page, airflow, "cdrflow_process", "missing-file", lambda f: f.type("file_ids", f"{a}, 98-99"), "failed"
    )
    refused_with(airflow, "cdrflow_process", run_id, "claim", "nothing done: Reprocess file ids: no file has id 98, 99")
    assert _rerun_by(engine, run_id) == set()  # nothing was put back
    run_id, _ = submitted(
        page, airflow, "cdrflow_process", "unknown-carrier", lambda f: f.choose("carrier", "ghost"), "failed"
    )
    refused_with(
        airflow, "cdrflow_process", run_id, "claim", "nothing done: Only this carrier: unknown carrier 'ghost'"
    )

    # (b) file ids typed with a range: exactly those files re-run and loaded again
    run_id, run = submitted(
        page, airflow, "cdrflow_process", "reprocess-ids", lambda f: f.type("file_ids", f"{a}, {b}-{c}"), "success"
    )
    assert run["conf"]["file_ids"] == f"{a}, {b}-{c}"
    assert _rerun_by(engine, run_id) == {a, b, c}

    # (b) a carrier's day, the day picked in the date picker
    def day_of_acme(f: Form) -> None:
        f.choose("carrier", "acme: ACME Telecom")
        f.type("day", "2026-11-01")

    run_id, run = submitted(page, airflow, "cdrflow_process", "carriers-day", day_of_acme, "success")
    assert run["conf"]["carrier"] == "acme" and run["conf"]["day"] == "2026-11-01"
    assert _rerun_by(engine, run_id) == {a, b, c}
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 6  # each call once


# --- billing -------------------------------------------------------------------------------------


def test_the_daily_billing_form(airflow, page, billing, day):
    form = Form(page, airflow, "cdrflow_billing_daily")
    assert form.input_type("period") == "date" and not form.required("period")
    assert form.choices("account") == ["(every daily account)", "A1: Alpha", "GHOST: Nobody"]  # daily ones only
    assert not form.required("account")
    shot(page, "cdrflow_billing_daily-form")

    def ghost(f: Form) -> None:
        f.type("period", "2026-11-01")
        f.choose("account", "GHOST: Nobody")

    run_id, _ = submitted(page, airflow, "cdrflow_billing_daily", "unknown-account", ghost, "failed")
    refused_with(
        airflow,
        "cdrflow_billing_daily",
        run_id,
        "completeness",
        "nothing done: Only this account: unknown account 'GHOST'",
    )
    assert q(billing, "SELECT count(*) FROM billruns WHERE kind = 'daily' AND period_start = '2026-11-01'") == [(0,)]

    def alpha(f: Form) -> None:
        f.type("period", "2026-11-01")
        f.choose("account", "A1: Alpha")

    submitted(page, airflow, "cdrflow_billing_daily", "account-day", alpha, "success")
    closed = q(
        billing, "SELECT scope, status, totals FROM billruns WHERE kind = 'daily' AND period_start = '2026-11-01'"
    )
    assert closed == [("A1", "closed", {"EUR": "0.4400"})]


def test_the_monthly_billing_form(airflow, page):
    form = Form(page, airflow, "cdrflow_billing_monthly")
    assert form.is_text_field("period") and not form.required("period")
    suggested = form.dialog.locator("datalist#list_period option").evaluate_all("os => os.map(o => o.value)")
    assert len(suggested) == 12 and all(re.fullmatch(r"\d{4}-\d{2}", m) for m in suggested)  # the last 12 months
    assert form.choices("account") == ["(every monthly account)", "M1: Monthly"]
    form.type("period", "November")  # not a month: Airflow refuses the form, no run is made
    form.dialog.get_by_role("button", name=re.compile(r"^\s*Trigger$")).click()
    form.dialog.get_by_text("Invalid input for param period: 'November' does not match").wait_for()
    shot(page, "cdrflow_billing_monthly-bad-month-refused")
    assert "/runs/" not in page.url
    # no run from the form (a scheduled run may exist: on the first of a month the DAG's cron fires)
    assert airflow.api("/dags/cdrflow_billing_monthly/dagRuns", params={"run_type": ["manual"]})["total_entries"] == 0


def test_the_rerating_form(airflow, page, billing, day):
    from cdrflow.billing.billrun import run_billrun

    assert run_billrun(billing, "daily", "2026-11-01").status == "closed"
    v2 = q(billing, "SELECT id FROM rate_deck_versions WHERE deck = 'retail' AND effective_from = '2026-11-02'")[0][0]
    form = Form(page, airflow, "cdrflow_rerate")
    assert form.choices("kind") == ["daily", "monthly"]
    assert form.required("period") and form.is_text_field("period")  # a rerating names its period
    assert form.choices("account") == ["(every account)", "A1: Alpha", "GHOST: Nobody", "M1: Monthly"]
    assert form.choices("carrier") == ["(every carrier)", "acme: ACME Telecom", "kazoo", "ghost"]
    assert form.is_text_field("deck_version")
    for name in ("account", "carrier", "deck_version"):
        assert not form.required(name), name
    shot(page, "cdrflow_rerate-form")

    def ghost(f: Form) -> None:
        f.type("period", "2026-11-01")
        f.choose("account", "GHOST: Nobody")

    run_id, _ = submitted(page, airflow, "cdrflow_rerate", "unknown-account", ghost, "failed")
    refused_with(
        airflow, "cdrflow_rerate", run_id, "rerate", "nothing done: Only this account: unknown account 'GHOST'"
    )

    def other_day(f: Form) -> None:
        f.type("period", "2026-10-20")

    run_id, _ = submitted(page, airflow, "cdrflow_rerate", "unbilled-day", other_day, "failed")
    refused_with(airflow, "cdrflow_rerate", run_id, "rerate", "nothing to rerate: the daily period 2026-10-20")
    assert q(billing, "SELECT count(*) FROM billruns WHERE version > 1") == [(0,)]

    def with_v2(f: Form) -> None:
        f.type("period", "2026-11-01")
        f.type("deck_version", str(v2))

    submitted(page, airflow, "cdrflow_rerate", "deck-version", with_v2, "success")
    runs = q(
        billing,
        "SELECT version, status, totals FROM billruns WHERE kind = 'daily' AND period_start = '2026-11-01' "
        "ORDER BY version",
    )
    assert runs == [(1, "closed", {"EUR": "0.5400"}), (2, "closed", {"EUR": "1.0400"})]  # UK 0.10 -> 0.20 a minute


# --- rate decks ----------------------------------------------------------------------------------


@pytest.fixture
def decks(engine, places) -> Iterator[Path]:
    yield places["decks"]
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE deck_drops, rate_decks, rate_deck_versions, rates RESTART IDENTITY CASCADE"))


def test_the_deck_import_form(airflow, page, engine, decks):
    form = Form(page, airflow, "cdrflow_import_decks")
    assert form.is_text_field("path") and not form.required("path")
    shot(page, "cdrflow_import_decks-form")

    name = "wholesale/2026-11-01__november.EUR.csv"
    run_id, _ = submitted(
        page, airflow, "cdrflow_import_decks", "missing-drop", lambda f: f.type("path", name), "failed"
    )
    refused_with(
        airflow,
        "cdrflow_import_decks",
        run_id,
        "import_decks",
        f"nothing done: Only this drop: no drop {name} in the deck drop",
    )

    (decks / "wholesale").mkdir(exist_ok=True)
    (decks / name).write_text(DECK)
    submitted(page, airflow, "cdrflow_import_decks", "one-drop", lambda f: f.type("path", name), "success")
    assert q(engine, "SELECT deck, version, effective_from, rates FROM rate_deck_versions") == [
        ("wholesale", 1, date(2026, 11, 1), 2)
    ]


# --- reports -------------------------------------------------------------------------------------


def test_the_report_building_form(airflow, page, reports):
    with reports.begin() as conn:
        add_call(conn, "r1", "2026-11-01T10:00:00+00:00")
        failed = new_request(conn, DAY).id
        conn.execute(
            text("UPDATE report_requests SET status = 3, failure_reason = 'store was down' WHERE id = :id"),
            {"id": failed},
        )
    form = Form(page, airflow, "cdrflow_reports")
    assert form.is_text_field("retry_failed") and not form.required("retry_failed")
    assert not form.required("builders")
    shot(page, "cdrflow_reports-form")

    nobody = "0b7f6a52-0000-4000-8000-000000000000"
    run_id, _ = submitted(
        page, airflow, "cdrflow_reports", "unknown-request", lambda f: f.type("retry_failed", nobody), "failed"
    )
    refused_with(
        airflow,
        "cdrflow_reports",
        run_id,
        "plan",
        f"nothing done: Retry failed requests: no report request has id {nobody}",
    )
    assert status_of(reports, failed).status == 3

    submitted(page, airflow, "cdrflow_reports", "retry", lambda f: f.type("retry_failed", failed), "success")
    assert status_of(reports, failed).status == 2 and status_of(reports, failed).row_count == 1


# --- folder registration -------------------------------------------------------------------------


def test_the_register_folder_form(airflow, page, engine, places):
    add_carrier(engine, "acme", file_type="asterisk_csv")
    form = Form(page, airflow, "cdrflow_register_folder")
    assert form.required("folder") and form.required("carrier")  # both must be given: starred
    assert form.choices("carrier") == ["acme: ACME Telecom", "kazoo", "ghost"]
    assert not form.required("pattern") and not form.required("file_source")
    shot(page, "cdrflow_register_folder-form")

    def outside(f: Form) -> None:
        f.type("folder", "/etc")
        f.choose("carrier", "acme: ACME Telecom")

    run_id, _ = submitted(page, airflow, "cdrflow_register_folder", "outside-roots", outside, "failed")
    refused_with(airflow, "cdrflow_register_folder", run_id, "register", "nothing registered: ")

    drop = places["uploads"] / "acme-nov"
    drop.mkdir()
    (drop / "Master-0102.csv").write_bytes(rows("f1", "f2"))

    def folder(f: Form) -> None:
        f.type("folder", "acme-nov")  # relative: under the root
        f.choose("carrier", "acme: ACME Telecom")
        f.type("pattern", "")  # empty: every file

    submitted(page, airflow, "cdrflow_register_folder", "folder", folder, "success")
    assert q(engine, "SELECT carrier, file_name, file_source FROM cdr_files") == [("acme", "Master-0102.csv", "upload")]


# --- collectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dag_id", ["cdrflow_collect_sftp", "cdrflow_collect_mailbox"])
def test_the_collectors_have_nothing_to_fill_in(airflow, page, dag_id):
    form = Form(page, airflow, dag_id)
    assert form.dialog.get_by_text("Run Parameters").count() == 0
    assert form.dialog.locator('[id^="element_"]').count() == 0
    shot(page, f"{dag_id}-form")
    page.keyboard.press("Escape")
