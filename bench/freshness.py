"""Benchmark: how soon a file dropped into a drop folder (or mailed to a mailbox, ``--source
mailbox``) is queryable in ``calls`` (issue 14, "Fresh data"). Goal: p95 <= 30 s on the default
settings.

It runs Airflow for real, as ``make airflow`` does: scheduler, triggerer, dag-processor and API
server as processes of their own, LocalExecutor, a PostgreSQL metadata database and a warehouse
database of their own (scratch databases on 127.0.0.1:5432, or ``--database-url``'s server,
dropped at the end). One carrier has one ``kind: bucket`` source, a local folder; only
``cdrflow_collect_bucket`` and ``cdrflow_process`` are unpaused. After one warm-up file (not
counted), it drops ``--files`` files at random moments over ``--over`` seconds (written as
``NAME.part``, then renamed, as upload tools do) and, for each, measures the time from the rename
to the first of its calls being readable in the warehouse (polled every 0.25 s). It prints each
file's latency, p50 / p95 / max against the goal, and how the collector runs were started
(watcher asset events or the one-minute timetable).

``--source mailbox``: the carrier's source is an IMAP mailbox on a Dovecot of the bench's own
(``tests/servers/dovecot.py``, loopback), watched by IMAP IDLE in the triggerer; each file is
an attachment of a mail APPENDed to the INBOX, timed from the APPEND; only
``cdrflow_collect_mailbox`` and ``cdrflow_process`` are unpaused.

``--no-preload``: the scheduler does not import Great Expectations before it forks its task
processes (``CDRFLOW_NO_PRELOAD=1``), so each processing task imports it, as before.

Usage: python bench/freshness.py [--source bucket|mailbox] [--files 20] [--over 240] [--rows 200]
                                 [--seed 14] [--database-url URL] [--keep] [--no-preload]
"""

from __future__ import annotations

import argparse
import contextlib
import email.policy
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import httpx
import yaml
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cdrflow.config import settings
from cdrflow.dev import generate
from cdrflow.warehouse import migrations, scratch
from common import scratch_database

REPO = Path(__file__).resolve().parents[1]
GOAL_P95 = 30.0
MAIL_CONN = "acme_mail"
COMPONENTS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"],
    "dag-processor": ["dag-processor"],
    "scheduler": ["scheduler"],
    "triggerer": ["triggerer"],
}
LOADED = text(
    "SELECT f.file_name FROM cdr_files f WHERE f.file_name = ANY(:names) "
    "AND EXISTS (SELECT 1 FROM calls c WHERE c.file_id = f.id)"
)
DAGS_KNOWN = text("SELECT count(*) FROM dag WHERE dag_id = ANY(:ids)")
WATCHING = text("SELECT count(*) FROM trigger WHERE classpath LIKE :trigger AND triggerer_id IS NOT NULL")
TRIGGERS = {"bucket": "%source_watch.NewFilesTrigger", "mailbox": "%mail_watch.NewMailTrigger"}
# how long the processing DAG's loading task ran (each mapped task instance that succeeded)
PROCESS_TASKS = text(
    "SELECT EXTRACT(EPOCH FROM end_date - start_date) FROM task_instance "
    "WHERE dag_id = 'cdrflow_process' AND task_id = 'process' AND state = 'success'"
)
RUN_TYPES = text("SELECT run_type, count(*) FROM dag_run WHERE dag_id = :dag GROUP BY run_type ORDER BY run_type")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def wait(what: str, check, timeout: float, processes: dict, logs: Path, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                raise SystemExit(f"airflow {name} exited ({process.returncode}): see {logs / (name + '.log')}")
        if found := check():
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f} s (logs in {logs})")
        time.sleep(every)


def airflow_env(
    home: Path, port: int, metadata_url: str, warehouse_url: str, drop: Path, mail_conn: str | None = None
) -> dict[str, str]:
    """Airflow's environment; the carrier's source is the drop folder, or with ``mail_conn`` (the
    connection's JSON) the INBOX of that IMAP server."""
    carriers = {"code": "acme", "name": "ACME", "file_type": "asterisk_csv"}
    source = {"kind": "bucket", "url": str(drop), "patterns": ["*.csv"]}
    if mail_conn:
        source = {"kind": "mailbox", "conn_id": MAIL_CONN, "senders": ["*@acme.example"], "attachments": ["*.csv"]}
    carriers["sources"] = [source]  # type: ignore[assignment]
    (home / "carriers.yaml").write_text(yaml.safe_dump({"carriers": [carriers]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CDRFLOW_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # the bench unpauses its two DAGs
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__TRIGGERER__TRIGGERER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW_CONN_CDRFLOW_WAREHOUSE": warehouse_url,
        "CDRFLOW_STATE_DIR": str(home / "state"),
        "CDRFLOW_RAW_STORE": (home / "raw").as_uri(),
        "CDRFLOW_CARRIERS_FILE": str(home / "carriers.yaml"),
        "PYTHONPATH": str(REPO / "include"),
    }
    if mail_conn:
        env[f"AIRFLOW_CONN_{MAIL_CONN.upper()}"] = mail_conn
    return env


def start(home: Path, env: dict[str, str], port: int) -> dict[str, subprocess.Popen]:
    logs = home / "logs"
    logs.mkdir()
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
    )
    if migrate.returncode:
        raise SystemExit(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
    processes = {}
    for name, args in COMPONENTS.items():
        with (logs / f"{name}.log").open("wb") as out:
            command = [sys.executable, "-m", "airflow", *(a.format(port=port) for a in args)]
            # a session of its own: stop() ends its children too (the scheduler's serve-logs
            # outlived it otherwise)
            processes[name] = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
    return processes


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the group this bench started, by its leader's id
    except ProcessLookupError:
        pass


def stop(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        _signal_group(process, signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        _signal_group(process, signal.SIGKILL)  # what is left of its group


def drop_file(folder: Path, name: str, data: bytes) -> float:
    """Write ``name.part``, then rename it: the moment the file appears, complete."""
    part = folder / f"{name}.part"
    part.write_bytes(data)
    part.rename(folder / name)
    return time.time()


def mail_to(imap) -> Callable[[Path, str, bytes], float]:
    """A ``drop_file`` for the mailbox: APPEND a mail with the file attached; the moment it is in."""

    def deliver(_folder: Path, name: str, data: bytes) -> float:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "cdr@acme.example", "cdr@billing.example", name
        message.set_content("CDRs attached")
        message.add_attachment(data, maintype="text", subtype="csv", filename=name)
        imap.append("INBOX", message.as_bytes(policy=email.policy.SMTP))
        return time.time()

    return deliver


def measure(
    warehouse, drop: Path, names: list[str], at: list[float], rows: int, seed: int, timeout: float, deliver=drop_file
) -> dict:
    """Drop each file at its moment (seconds from now) with ``deliver``; return name -> seconds
    until queryable."""
    t0 = time.time()
    dropped: dict[str, float] = {}
    latency: dict[str, float] = {}
    pending = list(zip(at, names, strict=True))
    while pending or set(dropped) - set(latency):
        now = time.time()
        while pending and now - t0 >= pending[0][0]:
            _, name = pending.pop(0)
            dropped[name] = deliver(drop, name, generate.asterisk_bytes(rows, seed=seed + len(dropped)))
            print(f"  {time.strftime('%H:%M:%S')} dropped {name}", flush=True)
        waiting = [n for n in dropped if n not in latency]
        if waiting:
            with warehouse.connect() as conn:
                found = conn.execute(LOADED, {"names": waiting}).scalars().all()
            seen = time.time()
            for name in found:
                latency[name] = seen - dropped[name]
                print(f"  {time.strftime('%H:%M:%S')} {name} queryable after {latency[name]:.1f} s", flush=True)
            late = [n for n in waiting if n not in latency and seen - dropped[n] > timeout]
            if late:
                raise SystemExit(f"not queryable within {timeout:.0f} s: {', '.join(late)}")
        time.sleep(0.25)
    return latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["bucket", "mailbox"], default="bucket", help="where the files arrive")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--over", type=float, default=240.0, help="seconds over which the files are dropped")
    parser.add_argument("--rows", type=int, default=200, help="calls per file")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a file after this many seconds")
    parser.add_argument("--database-url", help="a PostgreSQL server where the bench may create databases")
    parser.add_argument("--keep", action="store_true", help="keep the databases and the folder (logs)")
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help="the scheduler does not import Great Expectations before it forks task processes (CDRFLOW_NO_PRELOAD=1)",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as servers:
        imap = None
        if args.source == "mailbox":
            sys.path.insert(0, str(REPO))
            from tests.servers.dovecot import running_dovecot

            imap = servers.enter_context(running_dovecot())
        run(args, imap)


def run(args: argparse.Namespace, imap) -> None:
    """Start Airflow, drop (or mail) the files, print the figures; ``imap``: the Dovecot of
    ``--source mailbox``."""
    dags = (f"cdrflow_collect_{args.source}", "cdrflow_process")
    home = Path(tempfile.mkdtemp(prefix="cdrflow-freshness-"))
    drop = home / "drop"
    drop.mkdir()
    warehouse_url, drop_warehouse = scratch_database(args.database_url)
    server, _ = scratch.server_url(args.database_url, settings.state_dir())
    metadata_url, drop_metadata = scratch.create(server, prefix="cdrflow_bench_airflow")
    warehouse = create_engine(warehouse_url)
    metadata = create_engine(metadata_url)
    migrations.upgrade(warehouse, settings.SQL_DIR)
    port = free_port()
    env = airflow_env(home, port, metadata_url, warehouse_url, drop, imap.airflow_conn_json() if imap else None)
    if args.no_preload:
        env["CDRFLOW_NO_PRELOAD"] = "1"
    processes: dict[str, subprocess.Popen] = {}
    try:
        print(f"starting Airflow (logs in {home / 'logs'})", flush=True)
        processes = start(home, env, port)

        def scalar(engine, query, **params):
            try:
                with engine.connect() as conn:
                    return conn.execute(query, params).scalar()
            except Exception:  # tables not created yet
                return None

        def api_up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2).is_success
            except httpx.HTTPError:
                return False

        # the tasks report to the API server: unpaused before it answers, the first ones fail
        wait("the API server", api_up, 240, processes, home)
        wait("the two DAGs parsed", lambda: scalar(metadata, DAGS_KNOWN, ids=list(dags)) == 2, 240, processes, home)
        for dag_id in dags:
            subprocess.run(
                [sys.executable, "-m", "airflow", "dags", "unpause", dag_id], env=env, check=True, capture_output=True
            )
        wait(
            "the watcher running in the triggerer",
            lambda: scalar(metadata, WATCHING, trigger=TRIGGERS[args.source]),
            180,
            processes,
            home,
        )
        deliver = mail_to(imap) if imap else drop_file
        print("warm-up file (not counted)", flush=True)
        measure(warehouse, drop, ["warmup.csv"], [0.0], args.rows, args.seed * 1000, args.timeout, deliver)
        rng = random.Random(args.seed)
        at = sorted(rng.uniform(0, args.over) for _ in range(args.files))
        names = [f"drop-{i:03d}.csv" for i in range(args.files)]
        print(f"dropping {args.files} files of {args.rows} calls at random moments over {args.over:.0f} s", flush=True)
        started = time.time()
        latency = measure(warehouse, drop, names, at, args.rows, args.seed * 1000 + 1, args.timeout, deliver)
        with metadata.connect() as conn:
            runs = dict(conn.execute(RUN_TYPES, {"dag": dags[0]}).all())
            process_seconds = sorted(float(s) for s in conn.execute(PROCESS_TASKS).scalars())
        values = list(latency.values())
        result = {
            "source": args.source,
            "files": len(values),
            "rows_per_file": args.rows,
            "p50_s": round(percentile(values, 50), 1),
            "p95_s": round(percentile(values, 95), 1),
            "max_s": round(max(values), 1),
            "min_s": round(min(values), 1),
            "goal_p95_s": GOAL_P95,
            "collector_runs": runs,
            "process_task_p50_s": round(percentile(process_seconds, 50), 2) if process_seconds else None,
            "process_tasks": len(process_seconds),
            "preload": not args.no_preload,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "wall_s": round(time.time() - started, 1),
        }
        verdict = "met" if result["p95_s"] <= GOAL_P95 else "NOT met"
        print(
            f"\ndrop -> queryable: p50 {result['p50_s']} s, p95 {result['p95_s']} s, max {result['max_s']} s "
            f"(min {result['min_s']} s) over {len(values)} files; goal p95 <= {GOAL_P95:.0f} s: {verdict}"
        )
        print(f"collector runs by trigger: {runs} (asset_triggered: the watcher; scheduled: the one-minute poll)")
        if process_seconds:
            print(
                f"process tasks (the task that loads the files): {len(process_seconds)}, median "
                f"{result['process_task_p50_s']} s (Great Expectations {'preloaded' if result['preload'] else 'imported by each task'})"
            )
        print(json.dumps(result))
    finally:
        stop(processes)
        warehouse.dispose()
        metadata.dispose()
        if args.keep:
            print(f"kept: {home}, {warehouse_url}, {metadata_url}")
        else:
            drop_warehouse()
            drop_metadata()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
