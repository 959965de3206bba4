"""The cdrflow page in a real browser, inside a real Airflow: Playwright drives Debian's Chromium
(``scripts/install-test-services.sh`` installs it; Playwright cannot download browsers here)
against ``airflow api-server``, ``dag-processor`` and ``scheduler`` (LocalExecutor) started by the
test with the plugin, a SimpleAuthManager user with a known password and the test's warehouse.

An operator logs in through Airflow's login page, opens "cdrflow" from the UI's menu, sees the
failed file, opens its quarantine (the raw line and the failed check), follows the link to the
prefilled trigger form ("load it anyway"), submits it (the run goes through Airflow's REST API
with the operator's session, the scheduler runs it) and sees the file loaded on the page.

Screenshots of each step are saved under ``$CDRFLOW_TEST_ARTIFACTS/ui_browser`` (default
``tests/artifacts/ui_browser``, ignored by git), with the Airflow processes' logs. Without
Chromium the test skips on a developer's machine and fails in CI (``CI`` set).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.browser_support import ARTIFACTS as SUPPORT_ARTIFACTS
from tests.browser_support import USER, Airflow, chromium_path, started_airflow, wait
from tests.test_loader import register, rows
from tests.test_reprocessing import BROKEN

from cdrflow.loading.transaction import load_file
from conftest import add_carrier

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTIFACTS = SUPPORT_ARTIFACTS / "ui_browser"


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_path()


@pytest.fixture(scope="module")
def raw_store(tmp_path_factory) -> str:
    return (tmp_path_factory.mktemp("ui-raw") / "raw").as_uri()


@pytest.fixture(scope="module")
def airflow(chromium, warehouse_url: str, raw_store: str, tmp_path_factory) -> Iterator[Airflow]:
    """Airflow's API server (with the plugin), DAG processor and scheduler on a metadata database
    of their own (tests/browser_support.py); the operator's password is known to the test."""
    carriers = [{"code": "acme", "name": "ACME", "file_type": "asterisk_csv", "reject_threshold": 0}]
    home = tmp_path_factory.mktemp("airflow-ui")
    with started_airflow(
        home, ARTIFACTS / "airflow-logs", warehouse_url, carriers, {"CDRFLOW_RAW_STORE": raw_store}
    ) as up:
        yield up


@pytest.fixture
def failed_file(engine, raw_store: str) -> int:
    """A file of acme (rejection threshold 0) with one line that fails its checks: failed, in the
    raw store the Airflow tasks read."""
    from cdrflow.intake.rawstore import RawStore

    add_carrier(engine, "acme", file_type="asterisk_csv", reject_threshold=0.0)
    store = RawStore(raw_store)
    file_id = register(engine, store, rows("w1", "w2", "w3") + BROKEN, "Master-0101.csv").file_id
    assert load_file(engine, store, file_id).status == "failed"
    return file_id


def test_an_operator_loads_a_failed_file_from_the_cdrflow_page(airflow, failed_file, chromium):
    from playwright.sync_api import expect, sync_playwright

    shots = ARTIFACTS
    for old in shots.glob("*.png"):
        old.unlink()
    step = iter(range(1, 100))

    def shot(page, name: str) -> None:
        page.screenshot(path=str(shots / f"{next(step):02d}-{name}.png"), full_page=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)

            # 1. Airflow sends a visitor without a session to its login page
            page.goto(airflow.base + "/")
            page.wait_for_url(re.compile(r"/auth/login"))
            page.get_by_label(re.compile("username", re.I)).fill(USER)
            page.get_by_label(re.compile("password", re.I)).fill(airflow.password)
            shot(page, "login")
            page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
            page.wait_for_url(lambda url: "/auth/login" not in url)

            # 2. "cdrflow" in the UI's menu opens the page inside Airflow's UI
            page.get_by_role("link", name="cdrflow").first.click()
            page.wait_for_url(re.compile(r"/plugin/cdrflow"))
            frame = page.frame_locator("iframe").first
            row = frame.locator(f'tr[data-file-id="{failed_file}"]').first
            expect(row).to_contain_text("Master-0101.csv")
            expect(row).to_contain_text("failed")
            shot(page, "cdrflow-page-failed-file")

            # 3. the file's quarantine: the raw line and the check it failed
            row.get_by_role("link", name=str(failed_file)).first.click()
            line = frame.locator('tr[data-line="4"]')
            expect(line.locator("td.raw")).to_contain_text(BROKEN.decode().strip()[:40])
            expect(line.locator(".check").first).not_to_be_empty()
            frame.locator("#quarantine").scroll_into_view_if_needed()
            shot(page, "file-quarantine")

            # 4. the link to the prefilled trigger form: load it anyway, its quarantine kept
            frame.get_by_role("link", name=re.compile(r"anyway")).click()
            expect(frame.locator("#param-accept_file_ids")).to_have_value(str(failed_file))
            expect(frame.locator("#param-file_ids")).to_have_value("")
            expect(frame.locator("#unpause-row")).to_be_visible()  # Airflow created the DAG paused
            shot(page, "trigger-form-prefilled")

            # 5. submitted through Airflow's REST API with the operator's own session
            frame.locator("#submit").click()
            expect(frame.locator("#outcome")).to_contain_text("queued", timeout=30_000)
            run_id = frame.locator("#run-link").get_attribute("href").rsplit("/", 1)[-1]
            shot(page, "run-triggered")

            # 6. the scheduler runs it; the file's page, opened inside the UI by its deep link
            # (the UI mirrors the frame's path after /plugin/cdrflow), shows it loaded
            deep_link = f"{airflow.base}/plugin/cdrflow/cdr/operator/files/{failed_file}"

            def loaded() -> bool:
                page.goto(deep_link)
                return frame.locator("h1 .status").inner_text() == "loaded"

            wait(f"file {failed_file} loaded by run {run_id}", loaded, 150, airflow, every=3)
            expect(frame.locator("#quarantine")).to_contain_text("1 rejected row")  # kept
            expect(page.get_by_role("link", name="cdrflow").first).to_be_visible()  # inside Airflow's UI
            shot(page, "file-loaded")
        finally:
            browser.close()

    # the run was the operator's, with the values of the form
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    run = httpx.get(f"{airflow.base}/api/v2/dags/cdrflow_process/dagRuns/{run_id}", headers=headers, timeout=30).json()
    assert run["conf"]["accept_file_ids"] == str(failed_file) and run["triggering_user_name"] == USER
    assert len(list(shots.glob("*.png"))) == 6


def test_inside_airflow_the_page_asks_for_airflows_login(airflow):
    page = f"{airflow.base}/cdr/operator/"
    refused = httpx.get(page, timeout=30)
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("text/html")
    assert 'href="/auth/login?next=' in refused.text  # Airflow's own login page, back here after
    forged = httpx.get(page, cookies={"_token": "eyJhbGciOiJIUzUxMiJ9.e30.forged"}, timeout=30)
    assert forged.status_code == 403, forged.text
    opened = httpx.get(page, headers={"Authorization": f"Bearer {airflow.token()}"}, timeout=30)
    assert opened.status_code == 200 and f"{USER} ·" in opened.text
