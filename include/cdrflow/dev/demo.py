"""The main job (``make demo``, on the embedded warehouse): a day of traffic from three carriers,
collected and loaded by the Airflow DAGs.

Three carriers of ``include/carriers.yaml`` in three formats (ACME: Asterisk Master.csv, Kazoo:
Kazoo JSON, Telco: a Telnyx-style CDR report), one file ACME sends twice under another name (a
duplicate by SHA1, never loaded) and one with broken rows (quarantined with their reasons). The
files are written into the local upload folders those carriers' bucket sources read
(``<state>/uploads/<carrier>``); then Airflow runs ``cdrflow_collect_bucket`` and
``cdrflow_process`` (``airflow dags test``: the real DAGs, in-process executor, metadata in
``<state>/airflow``), and the outcome per file is read back from the warehouse.

Then the day is billed: the demo deck (``include/decks/demo.csv``) is imported (once), the demo's
accounts (ACME's three accountcodes and Kazoo's account, all billed daily) are written to
``<state>/demo-accounts.yaml`` and synced, and ``cdrflow_billing_daily`` runs for the demo day:
completeness check, billrun, invoice files in the artifact store (``<state>/artifacts``). Telco's
calls carry no account: they are charged unrated, ``no deck for the account``.

Last, an operator's report request of the day (seed 001) is built by ``cdrflow_reports``, and the
demo prints signed download links of it and of an invoice, with the ``curl`` lines that fetch
them from the API (:mod:`cdrflow.dev.demo_links`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, text

from cdrflow.config import account_file, carrier_file, settings
from cdrflow.config.errors import CdrflowError
from cdrflow.config.text import render
from cdrflow.dev import demo_links, generate
from cdrflow.warehouse import accounts, carriers

DEMO_ACCOUNTS = ("acct001", "acct002", "acct003")  # ACME's accountcodes in the demo
KAZOO_ACCOUNT = "a1b2c3d4e5f6"  # generate.kazoo_records' account
DEMO_DECK = settings.REPO_DIR / "include" / "decks" / "demo.csv"


def prepare_uploads(uploads: Path) -> list[Path]:
    """Write the day's files into each carrier's upload folder; returns them in write order."""
    day = generate.demo_day()
    acme, kazoo, telco = (uploads / c for c in ("acme", "kazoo", "telco"))
    for folder in (acme, kazoo, telco):
        folder.mkdir(parents=True, exist_ok=True)
    first = generate.write_asterisk_csv(
        acme / f"Master-{day:%Y%m%d}-a.csv", 2_000, seed=1, day=day, accounts=DEMO_ACCOUNTS
    )
    second = generate.write_asterisk_csv(
        acme / f"Master-{day:%Y%m%d}-b.csv", 1_500, seed=2, day=day, accounts=DEMO_ACCOUNTS
    )
    written = [first, second]
    resent = acme / f"resent-Master-{day:%Y%m%d}-a.csv"
    shutil.copyfile(first, resent)  # same bytes, new name
    late = generate.asterisk_bytes(400, seed=4, day=day, accounts=DEMO_ACCOUNTS).splitlines(keepends=True)
    late[10] = late[10].replace(b'"ANSWERED"', b'"ANSWERED","extra column"', 1)  # too many columns
    late[20] = late[20][:40] + b"\n"  # cut short
    (acme / f"Master-{day:%Y%m%d}-c.csv").write_bytes(b"".join(late))
    written += [
        resent,
        acme / f"Master-{day:%Y%m%d}-c.csv",
        generate.write_kazoo_json(kazoo / f"cdrs-{day:%Y-%m-%d}.json", 1_000, seed=3, day=day),
        generate.write_telnyx_csv(telco / f"cdr-report-{day:%Y-%m-%d}.csv", 800, seed=5, day=day),
    ]
    return written


def airflow_env(warehouse_url: str) -> dict[str, str]:
    """The environment the DAGs run in: this repository's dags/, Airflow's home under the state
    directory, the warehouse handed to the tasks."""
    state = settings.state_dir()
    return {
        **os.environ,
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME") or str(state / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.REPO_DIR / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CDRFLOW_STATE_DIR": str(state),
        "CDRFLOW_DATABASE_URL": warehouse_url,
        "CDRFLOW_RAW_STORE": settings.raw_store_url(),
        "CDRFLOW_ARTIFACT_STORE": settings.artifact_store_url(),
    }


def run_airflow(args: list[str], env: dict[str, str], log: Path) -> None:
    """``airflow ARGS`` with its (long) output appended to ``log``; a failure names the log."""
    airflow = Path(sys.executable).with_name("airflow")
    with open(log, "a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        done = subprocess.run([str(airflow), *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise CdrflowError(f"airflow {' '.join(args)} failed (exit {done.returncode}); see {log}")


def final_state(output: str) -> str:
    """The final state ``airflow dags test`` logged for its run."""
    for line in reversed(output.splitlines()):
        if "DagRun Finished" in line and "state=" in line:
            return line.split("state=", 1)[1].split(",", 1)[0]
    return "unknown"


def main(engine: Engine, warehouse_url: str) -> str:
    started = time.perf_counter()
    state = settings.state_dir()
    configs = carrier_file.load()
    with engine.begin() as conn:
        carriers.sync(conn, configs)
        first_new = conn.execute(text("SELECT coalesce(max(id), 0) + 1 FROM cdr_files")).scalar_one()
    prepare_uploads(state / "uploads")
    env = airflow_env(warehouse_url)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    log = state / "demo-airflow.log"
    log.write_text("")
    run_airflow(["db", "migrate"], env, log)
    prepare_billing(engine, state)
    report_id = demo_links.request_report(engine, generate.demo_day())
    states = {}
    period = f"{generate.demo_day():%Y-%m-%d}"
    runs = {
        "cdrflow_collect_bucket": [],
        "cdrflow_process": [],
        "cdrflow_billing_daily": ["--conf", json.dumps({"period": period, "account": None})],
        "cdrflow_reports": [],
    }
    for dag_id, more in runs.items():
        mark = log.stat().st_size
        run_airflow(["dags", "test", *more, dag_id], env, log)
        with open(log) as f:
            f.seek(mark)
            part = f.read()
        states[dag_id] = final_state(part)
    loaded = report(engine, first_new, states, time.perf_counter() - started, log)
    billing = billing_report(engine, period)
    return f"{loaded}\n\n{billing}\n\n{demo_links.downloads(engine, report_id, period)}"


def prepare_billing(engine: Engine, state: Path) -> None:
    """The demo deck (imported once: a re-run keeps its version) and the demo's accounts."""
    from cdrflow.billing import decks
    from cdrflow.billing.deck_files import cdrflow_csv
    from cdrflow.billing.model import Deck

    path = state / "demo-accounts.yaml"
    path.write_text(
        "# The demo's accounts (written by `make demo`; the real file is include/accounts.yaml)\n"
        "accounts:\n"
        + "".join(
            f'  - {{account_id: "{a}", name: {n}, sell_deck: demo, cycle: daily, currency: USD, billing_group: demo}}\n'
            for a, n in [*((a, f"ACME customer {a}") for a in DEMO_ACCOUNTS), (KAZOO_ACCOUNT, "Kazoo reseller")]
        )
    )
    with engine.begin() as conn:
        accounts.sync(conn, account_file.load(path))
        if decks.get_deck(conn, "demo") is None:
            imported = cdrflow_csv.read(DEMO_DECK, Deck(name="demo", currency="USD"), date(2026, 10, 1))
            decks.store(conn, imported.versions[0], f"{DEMO_DECK.name} (cdrflow)")


def billing_report(engine: Engine, period: str) -> str:
    """The demo day's billing: per-account totals, calls rated and unrated (by reason), where the
    invoice files are."""
    with engine.connect() as conn:
        run = conn.execute(
            text(
                "SELECT id, version, calls, rated, unrated, totals, missing_carriers FROM billruns WHERE kind = 'daily' "
                "AND period_start = :p AND scope = 'all' AND status = 'closed' ORDER BY version DESC LIMIT 1"
            ),
            {"p": period},
        ).one_or_none()
        if run is None:
            return f"billing: no closed daily billrun of {period} (see the Airflow log)"
        lines = conn.execute(
            text(
                "SELECT account_id, currency, sum(calls) AS calls, sum(billed_seconds) AS seconds, sum(amount) AS amount "
                "FROM invoice_lines WHERE billrun_id = :id GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            {"id": run.id},
        ).all()
        files = conn.execute(
            text("SELECT kind, uri FROM billrun_artifacts WHERE billrun_id = :id ORDER BY kind DESC, account_id"),
            {"id": run.id},
        ).all()
    table = render(
        ["account", "calls", "billed minutes", "total"],
        [[r.account_id, r.calls, f"{r.seconds / 60:,.1f}", f"{r.amount} {r.currency}"] for r in lines],
    )
    unrated = sum(run.unrated.values())
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(run.unrated.items())) or "none"
    totals = ", ".join(f"{a} {c}" for c, a in sorted(run.totals.items())) or "nothing"
    invoices = [f for f in files if f.kind == "invoice"]
    summary = next((f.uri for f in files if f.kind == "summary"), None)
    folder = summary.rsplit("/", 1)[0] + "/" if summary else "(not written)"
    missing = f"; carriers missing: {', '.join(run.missing_carriers)}" if run.missing_carriers else ""
    return (
        f"Billing: daily billrun {run.id} of {period} (version {run.version}), deck demo "
        f"(include/decks/demo.csv){missing}\n\n{table}\n\n"
        f"{run.calls} calls charged: {run.rated} rated, {unrated} unrated ({reasons}); total {totals}.\n"
        f"Invoice files: {len(invoices)} (one CSV per account) and summary.json in {folder}"
    )


def report(engine: Engine, first_id: int, states: dict[str, str], seconds: float, log: Path) -> str:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, file_name, carrier, file_type, left(original_hash, 12) AS sha1, file_size, status, "
                "duplicate_of, calls_loaded, calls_rejected, calls_duplicate FROM cdr_files WHERE id >= :first "
                "ORDER BY id"
            ),
            {"first": first_id},
        ).all()
    table = render(
        ["id", "file", "carrier", "format", "sha1", "bytes", "status", "calls", "rejected", "duplicates"],
        [
            [
                r.id,
                r.file_name,
                r.carrier,
                r.file_type,
                r.sha1,
                r.file_size,
                f"duplicate of {r.duplicate_of}" if r.duplicate_of else r.status,
                "" if r.calls_loaded is None else r.calls_loaded,
                "" if r.calls_rejected is None else r.calls_rejected,
                "" if r.calls_duplicate is None else r.calls_duplicate,
            ]
            for r in rows
        ],
    )
    originals = [r for r in rows if not r.duplicate_of]
    runs = ", ".join(f"{d} {s}" for d, s in states.items())
    return (
        f"Airflow: {runs} (log: {log})\n\n{table}\n\n"
        f"{len(rows)} files in {seconds:.1f}s: {len(originals)} new, {len(rows) - len(originals)} "
        f"duplicate(s); {sum(r.calls_loaded or 0 for r in rows)} calls loaded, "
        f"{sum(r.calls_rejected or 0 for r in rows)} rows quarantined, "
        f"{sum(r.calls_duplicate or 0 for r in rows)} duplicate calls "
        f"(see `cdrflow file ID` and the rejected_rows table)."
    )
