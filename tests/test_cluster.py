"""cdrflow on the CeleryExecutor, proven with real processes: ``make cluster``'s process cluster
(docker-compose.yaml's services: api-server, scheduler, dag-processor, triggerer, two Celery
workers, Redis, moto's S3 for the raw store and the artefacts, the warehouse on PostgreSQL,
OpenSSH's SFTP and Dovecot's IMAP for the carriers), the scheduler running everything as in
production (no ``dag.test()``).

One cluster for the module (starting it costs ~30 s on two cores). The tests run in order: a day
of three carriers with the broker restarting during the run; that day billed and a report of it
built and downloaded; a file delivered by SFTP and one by mail; then a worker killed mid-load.
"""

from __future__ import annotations

import email.policy
import imaplib
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from functools import partial
from pathlib import Path

import httpx
import paramiko
import pytest
import yaml
from tests.conftest import run_cli
from tests.servers import cluster as cluster_server

from cdrflow.dev import generate
from cdrflow.warehouse import credentials

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROCESSING = ("cdrflow_collect_bucket", "cdrflow_process")
SETTINGS = {
    "CDRFLOW_COLLECT_EVERY_MINUTES": "0.25",  # collect every 15 s
    "CDRFLOW_WORKER_CONCURRENCY": "2",
    "CDRFLOW_TASK_HEARTBEAT_TIMEOUT": "20",  # a lost worker's task is failed after 20 s...
    "CDRFLOW_RETRY_DELAY_SECONDS": "5",  # ...and tried again 5 s later
}
ACME_ACCOUNTS = ("acct001", "acct002", "acct003")  # the accountcodes of ACME's calls
KAZOO_ACCOUNT = "a1b2c3d4e5f6"  # generate.kazoo_records' account
DAY = datetime(2026, 11, 2, tzinfo=UTC)  # the day of three carriers: billed, reported
CARRIERS = [
    {
        "code": "acme",
        "file_type": "asterisk_csv",
        "ext": "csv",
        "write": partial(generate.write_asterisk_csv, accounts=ACME_ACCOUNTS),
    },
    {"code": "kazoo", "file_type": "kazoo_json", "ext": "json", "write": generate.write_kazoo_json},
    {"code": "telco", "file_type": "telnyx_csv", "ext": "csv", "write": generate.write_telnyx_csv},
]
KAZOO_SENDER = "cdr-export@kazoo.example"
# The sell deck (cdrflow's CSV format): every destination of the generated calls (+1, +33, +44)
DECK = (
    "prefix,destination,call_type,call_sub_type,rate_per_minute,connect_fee,first_increment,next_increment,"
    "minimum_seconds,minimum_charge,tiers\n"
    "1,North America,S,,0.0100,0,6,6,0,0,\n"
    "33,France,I,,0.0300,0.0100,60,1,0,0,\n"
    "44,United Kingdom,I,,0.0200,0,60,60,0,0,\n"
)


def remote_sources(code: str, servers: dict) -> list[dict]:
    """The sources of docker-compose.yaml's SFTP and mail servers (their connection ids): ACME's
    files also over SFTP, Kazoo's exports also by mail."""
    if code == "acme":
        sftp = servers["sftp"]  # settle_seconds 0: the uploads below are renamed into place once complete
        return [
            {
                "kind": "sftp",
                "conn_id": sftp["conn_id"],
                "directories": sftp["directories"],
                "patterns": ["*.csv"],
                "settle_seconds": 0,
                "after": "move",  # (kept, the next run would find it again: a duplicate)
                "move_to": f"{sftp['directories'][0]}/collected",
            }
        ]
    if code == "kazoo":
        mail = servers["mail"]
        return [{"kind": "mailbox", "conn_id": mail["conn_id"], "senders": [KAZOO_SENDER], "attachments": ["*.json"]}]
    return []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_admin_url):
    folder = tmp_path_factory.mktemp("cluster")
    carriers, accounts = folder / "carriers.yaml", folder / "accounts.yaml"
    servers = cluster_server.compose_servers()  # the SFTP and mail accounts docker-compose.yaml declares
    carriers.write_text(
        yaml.safe_dump(
            {
                "carriers": [
                    {
                        "code": c["code"],
                        "file_type": c["file_type"],
                        "sources": [
                            {"kind": "bucket", "url": f"uploads/{c['code']}", "patterns": [f"*.{c['ext']}"]},
                            *remote_sources(c["code"], servers),
                        ],
                    }
                    for c in CARRIERS
                ]
            }
        )
    )
    accounts.write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {"account_id": a, "name": a, "sell_deck": "cluster", "cycle": "daily", "currency": "EUR"}
                    for a in (*ACME_ACCOUNTS, KAZOO_ACCOUNT)
                ]
            }
        )
    )
    settings = {**SETTINGS, "CDRFLOW_CARRIERS": str(carriers), "CDRFLOW_ACCOUNTS": str(accounts)}
    running = cluster_server.start(folder / "run", pg_admin_url, settings)
    try:
        assert not running.state["skipped"], f"servers the cluster did not start: {running.state['skipped']}"
        running.unpause(*PROCESSING)
        yield running
    finally:
        running.stop()


WRITTEN: dict[str, int] = {}  # every file the module dropped -> its rows


def drop_day(cluster, day: datetime, files_per_carrier: int, rows: int, seed: int) -> None:
    """Write a day of files for every carrier into its upload folder (recorded in WRITTEN)."""
    for n, c in enumerate(CARRIERS):
        for i in range(files_per_carrier):
            target = cluster.uploads(c["code"]) / f"{c['code']}-{day:%Y%m%d}-{i:03d}.{c['ext']}.part"
            c["write"](target, rows, seed=seed + 100 * n + i, day=day)
            target.rename(target.with_suffix(""))  # complete files only: the collector skips *.part
            WRITTEN[target.with_suffix("").name] = rows


def files_by_status(cluster) -> dict[str, int]:
    return dict(cluster.query("warehouse", "SELECT status, count(*) FROM cdr_files GROUP BY status"))


def all_loaded(cluster, expected_files: int):
    """Every file loaded and no processing run still going (its report task done)."""
    loaded = files_by_status(cluster) == {"loaded": expected_files}
    busy = cluster.query(
        "metadata", "SELECT count(*) FROM dag_run WHERE dag_id = 'cdrflow_process' AND state <> 'success'"
    )
    return loaded and busy[0][0] == 0


def assert_every_call_once(cluster) -> None:
    """Every file dropped registered once and loaded; each of its rows one call or one quarantined
    row of that file (the calls' key would hide a second load; the file ids do not); no claim left."""
    per_file = cluster.query(
        "warehouse",
        "SELECT f.file_name, (SELECT count(*) FROM calls c WHERE c.file_id = f.id) "
        "+ (SELECT count(*) FROM rejected_rows r WHERE r.file_id = f.id) FROM cdr_files f",
    )
    assert sorted(name for name, _ in per_file) == sorted(WRITTEN)
    assert dict(per_file) == WRITTEN
    assert cluster.query("warehouse", "SELECT count(*) FROM file_claims")[0][0] == 0, "a claim was left behind"


def test_a_day_of_three_carriers_is_loaded_once_by_the_celery_workers_through_a_broker_restart(cluster):
    drop_day(cluster, DAY, files_per_carrier=3, rows=40, seed=1)
    # the broker restarts mid-run: once the collector has registered some of the files
    cluster.wait(lambda: files_by_status(cluster), "a file registered", timeout=90, every=0.2)
    cluster.restart_broker()
    cluster.wait(lambda: all_loaded(cluster, 9), "9 files loaded", timeout=150)

    assert_every_call_once(cluster)
    collect = cluster.task_instances("cdrflow_collect_bucket")
    process = cluster.task_instances("cdrflow_process")
    hostnames = set(cluster.workers.values())
    # the collectors ran on their queue, only on the worker that serves it
    assert {(t.queue, t.hostname) for t in collect if t.state == "success"} == {("cdrflow_collect", "cdrflow-worker-1")}
    # processing on its queue, in the warehouse pool, on the workers (their own host names)
    done = [t for t in process if t.state == "success"]
    assert {t.task_id for t in done} == {"claim", "process", "report"}  # claim repairs first (housekeeping)
    assert {(t.queue, t.pool) for t in done} == {("cdrflow_process", "cdrflow_warehouse")}
    assert {t.hostname for t in done} <= hostnames


def in_day(cluster, sql: str, **params):
    """``sql`` over the warehouse with :since/:until the day of three carriers (UTC)."""
    return cluster.query("warehouse", sql, since=DAY, until=DAY.replace(day=DAY.day + 1), **params)


def test_the_day_is_billed_and_reported_on_the_workers(cluster, tmp_path):
    warehouse = {"CDRFLOW_DATABASE_URL": cluster.env("airflow-scheduler")["AIRFLOW_CONN_CDRFLOW_WAREHOUSE"]}
    # what an operator does on any machine of the deployment: the deck, the accounts of the calls
    deck = tmp_path / "cluster.csv"
    deck.write_text(DECK)
    imported = run_cli(
        "rates", "import", str(deck), "--deck", "cluster", "--currency", "EUR", "--effective-from", "2026-10-01",
        env=warehouse,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    accounts_file = cluster.env("airflow-scheduler")["CDRFLOW_ACCOUNTS_FILE"]  # what the workers read
    synced = run_cli("accounts", "sync", "--file", accounts_file, env=warehouse)
    assert synced.returncode == 0, synced.stderr
    # an account's report request through the API the cluster's api-server serves at /cdr
    with cluster.engine("warehouse").begin() as conn:
        _, token = credentials.create(conn, "token", KAZOO_ACCOUNT, label="cluster test")
    api = f"{cluster.api}/cdr/reporting/cdr_requests"
    auth = {"X-Auth-Token": token}
    window = {"start_time": "2026-11-02T00:00:00Z", "end_time": "2026-11-03T00:00:00Z"}
    asked = httpx.post(api, headers=auth, json={**window, "call_types": [1, 2], "record_types": [1, 2]}, timeout=30)
    assert asked.status_code == 200, asked.text
    request_id = asked.json()["id"]

    # the billing run of the day, started as an operator does (Trigger DAG w/ config); the report
    # is built by cdrflow_reports, woken by its asset watcher in the triggerer
    cluster.unpause("cdrflow_billing_daily", "cdrflow_reports")
    run_id = cluster.trigger("cdrflow_billing_daily", {"period": "2026-11-02", "account": None})

    def report_done():
        shown = httpx.get(f"{api}/{request_id}", headers=auth, timeout=30).json()
        return shown if shown["status"] != 1 else None

    report = cluster.wait(report_done, "the report built", timeout=180)
    cluster.wait(lambda: cluster.run_state("cdrflow_billing_daily", run_id) in ("success", "failed"), "billed", 180)
    assert cluster.run_state("cdrflow_billing_daily", run_id) == "success"

    # the billrun closed with every call of the day charged once: the calls of an account rated by
    # its deck; telco's calls have no account (its format carries none): charged as unrated
    (run,) = cluster.query(
        "warehouse",
        "SELECT id, status, calls, rated, unrated, totals FROM billruns "
        "WHERE kind = 'daily' AND period_start = '2026-11-02' AND scope = 'all'",
    )
    ((calls, of_accounts),) = in_day(
        cluster, "SELECT count(*), count(account_id) FROM calls WHERE start_time >= :since AND start_time < :until"
    )
    ((telco,),) = in_day(
        cluster,
        "SELECT count(*) FROM calls WHERE carrier = 'telco' AND start_time >= :since AND start_time < :until",
    )
    assert calls == 9 * 40 and of_accounts == 6 * 40 and telco == 3 * 40
    assert (run.status, run.calls, run.rated) == ("closed", calls, of_accounts)
    assert run.unrated == {"no deck for the account": telco}
    ((charged, costed, cost),) = cluster.query(
        "warehouse",
        "SELECT count(*), count(cost), sum(cost) FROM charges WHERE billrun_id = :id AND side = 'sell' AND current",
        id=run.id,
    )
    assert (charged, costed) == (calls, of_accounts)
    assert cost > 0 and run.totals == {"EUR": format(cost, "f")}, "the total is the sum of the calls' costs"
    lines = dict(
        cluster.query(
            "warehouse",
            "SELECT account_id, sum(amount) FROM invoice_lines WHERE billrun_id = :id GROUP BY 1",
            id=run.id,
        )
    )
    assert set(lines) == {*ACME_ACCOUNTS, KAZOO_ACCOUNT} and sum(lines.values(), Decimal(0)) == cost
    files = cluster.query(
        "warehouse", "SELECT kind, account_id, uri, bytes FROM billrun_artifacts WHERE billrun_id = :id", id=run.id
    )
    assert sorted((f.kind, f.account_id) for f in files) == [
        *(("invoice", a) for a in sorted(lines)),
        ("summary", None),
    ]
    for f in files:  # written by the worker to the object store every machine sees
        assert f.uri.startswith("s3://") and len(cluster.stored(f.uri)) == f.bytes
    summary = json.loads(cluster.stored(next(f.uri for f in files if f.kind == "summary")))
    assert summary["billrun"]["id"] == run.id

    # the report: Complete, its bytes in the object store, downloaded through the API's link
    assert report["status"] == 2 and report["report_url"], report
    (row,) = cluster.query(
        "warehouse", "SELECT artifact_uri, bytes, row_count FROM report_requests WHERE id = :id", id=request_id
    )
    stored = cluster.stored(row.artifact_uri)
    downloaded = httpx.get(report["report_url"], timeout=30, follow_redirects=True)
    assert downloaded.status_code == 200 and downloaded.content == stored and len(stored) == row.bytes
    ((kazoo,),) = in_day(
        cluster,
        "SELECT count(*) FROM calls WHERE account_id = :a AND start_time >= :since AND start_time < :until",
        a=KAZOO_ACCOUNT,
    )
    assert row.row_count == kazoo == 3 * 40
    assert len(downloaded.text.splitlines()) == 1 + kazoo  # a header, a line per call of the account

    # both DAGs ran on the Celery workers, on the processing queue, in the warehouse pool
    for dag_id in ("cdrflow_billing_daily", "cdrflow_reports"):
        done = [t for t in cluster.task_instances(dag_id) if t.state == "success"]
        assert done and {t.hostname for t in done} <= set(cluster.workers.values()), dag_id
        assert {(t.queue, t.pool) for t in done} == {("cdrflow_process", "cdrflow_warehouse")}, dag_id
    billed = {t.task_id for t in cluster.task_instances("cdrflow_billing_daily") if t.run_id == run_id}
    assert billed == {"completeness", "billrun", "artifacts"}
    cluster.pause("cdrflow_billing_daily", "cdrflow_reports")


def test_files_delivered_by_sftp_and_by_mail_are_collected_and_loaded(cluster):
    sftp, mail = cluster.state["servers"]["sftp"], cluster.state["servers"]["mail"]
    day = datetime(2026, 11, 3, tzinfo=UTC)
    before = len(WRITTEN)
    # ACME uploads over SFTP (to a temporary name, renamed once complete), with the compose user
    upload = generate.asterisk_bytes(30, seed=21, day=day, accounts=ACME_ACCOUNTS)
    transport = paramiko.Transport((sftp["host"], sftp["port"]))
    try:
        transport.connect(username=sftp["user"], password=sftp["password"])
        client = paramiko.SFTPClient.from_transport(transport)
        assert client is not None
        target = f"{sftp['directories'][0]}/Master-20261103.csv"
        client.putfo(io.BytesIO(upload), target + ".part")
        client.rename(target + ".part", target)
    finally:
        transport.close()
    WRITTEN["Master-20261103.csv"] = 30
    # Kazoo's export arrives by mail: a message from its sender with the file attached
    export = json.dumps(generate.kazoo_records(25, seed=22, day=day)).encode()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = KAZOO_SENDER, "cdr@billing.example", "CDR export"
    message.set_content("CDRs attached")
    message.add_attachment(export, maintype="application", subtype="json", filename="kazoo-20261103.json")
    imap = imaplib.IMAP4(mail["host"], mail["port"], timeout=10)
    try:
        imap.login(mail["user"], mail["password"])
        assert imap.append("INBOX", None, None, message.as_bytes(policy=email.policy.SMTP))[0] == "OK"
    finally:
        imap.logout()
    WRITTEN["kazoo-20261103.json"] = 25

    cluster.unpause("cdrflow_collect_sftp", "cdrflow_collect_mailbox")
    try:
        cluster.wait(lambda: all_loaded(cluster, before + 2), "the SFTP and mail files loaded", timeout=180)
    finally:
        cluster.pause("cdrflow_collect_sftp", "cdrflow_collect_mailbox")
    assert_every_call_once(cluster)
    came = cluster.query(
        "warehouse", "SELECT file_name, carrier, file_source FROM cdr_files WHERE file_source IN ('sftp', 'email')"
    )
    assert sorted(came) == [("Master-20261103.csv", "acme", "sftp"), ("kazoo-20261103.json", "kazoo", "email")]
    for dag_id in ("cdrflow_collect_sftp", "cdrflow_collect_mailbox"):
        done = [t for t in cluster.task_instances(dag_id) if t.state == "success"]
        # (its announce may still be queued: the bucket collector's run may have woken processing first)
        assert {t.task_id for t in done} >= {"plan", "collect"}, dag_id
        assert {(t.queue, t.hostname) for t in done} == {("cdrflow_collect", "cdrflow-worker-1")}, dag_id
    # on the servers: the upload moved aside, the message filed away, once their files were registered
    outgoing = Path(sftp["root"]) / sftp["directories"][0]
    assert sorted(p.name for p in outgoing.rglob("*") if p.is_file()) == ["Master-20261103.csv"]
    assert (outgoing / "collected" / "Master-20261103.csv").read_bytes() == upload
    imap = imaplib.IMAP4(mail["host"], mail["port"], timeout=10)
    try:
        imap.login(mail["user"], mail["password"])
        counts = {box: imap.select(box, readonly=True)[1][0] for box in ("INBOX", "cdrflow-processed")}
    finally:
        imap.logout()
    assert counts == {"INBOX": b"0", "cdrflow-processed": b"1"}


def test_a_worker_killed_mid_load_leaves_nothing_half_done(cluster):
    before = len(WRITTEN)
    drop_day(cluster, datetime(2026, 11, 4, tzinfo=UTC), files_per_carrier=8, rows=120, seed=3)

    def loading():
        """The running ``process`` task once it has loaded some of its files but not all."""
        running = [
            t for t in cluster.task_instances("cdrflow_process") if t.task_id == "process" and t.state == "running"
        ]
        counts = files_by_status(cluster)
        return running[0] if running and before < counts.get("loaded", 0) < before + 24 else None

    victim = cluster.wait(loading, "a processing task half-way", timeout=120, every=0.2)
    killed = next(service for service, host in cluster.workers.items() if host == victim.hostname)
    cluster.kill_worker(killed)

    # A bound, not a speed claim: 20 s until the lost task is failed, 5 s until its retry, then the
    # retry's own load; 53 s on a quiet machine, over 180 s once on a slow one while CI ran.
    cluster.wait(lambda: all_loaded(cluster, before + 24), "every file loaded after the kill", timeout=420)
    assert_every_call_once(cluster)
    tries = [
        t for t in cluster.task_instances("cdrflow_process") if t.run_id == victim.run_id and t.task_id == "process"
    ]
    (final,) = [t for t in tries if t.map_index == victim.map_index]
    survivor = next(host for service, host in cluster.workers.items() if service != killed)
    assert final.state == "success" and final.try_number > victim.try_number
    assert final.hostname == survivor, "the retry ran on the worker that is still alive"
    # so both workers ran tasks: the victim's first try, the survivor's retry; over the module, every
    # task (collecting, loading, billing, reports) ran on one of the two
    dags = ("cdrflow_collect_bucket", "cdrflow_collect_sftp", "cdrflow_collect_mailbox", "cdrflow_process")
    dags += ("cdrflow_billing_daily", "cdrflow_reports")
    hosts = {t.hostname for d in dags for t in cluster.task_instances(d) if t.hostname}
    assert hosts == set(cluster.workers.values())
