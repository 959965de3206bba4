"""Benchmark: a report request (seed 001) of ``--rows`` calls, from request to Complete, and its
download, against PostgreSQL's own COPY of the same rows.

The calls: one day of a generated 21-column Asterisk Master.csv (time order, real layout), loaded
by cdrflow's loader (untimed). The request: an operator's report of that whole day, inbound and
outbound, complete and incomplete records: every call, one CSV row each.

Measured, on a real server process (uvicorn, ``cdrflow.api.app:standalone_app``) and the real
command: ``POST /cdr/reporting/cdr_requests`` (HTTP), then ``cdrflow reports build --once`` in a
fresh process (its start-up included: what the cdrflow_reports task runs), then ``GET`` of the
request until Complete. Then the download of ``report_url`` over HTTP (httpx, streamed, bytes
counted and hashed).

Both reads start from the disk: the files are dropped from the page cache first
(``posix_fadvise(DONTNEED)``), so neither side is served from memory the other did not have.

Baselines, in the same run on the same server: ``COPY (<the same SELECT>) TO STDOUT`` of the
report's own statement into a local file (psycopg2 ``copy_expert``: what PostgreSQL and a client
take to write those rows to a file); reading that file from disk in 1 MiB pieces with the same
hashing.

Usage: python bench/reports.py [--rows 1000000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import create_engine, text
from tests.servers import api as api_servers

from cdrflow.reports import query
from cdrflow.warehouse import credentials
from cdrflow.warehouse.db import normalise_url
from common import loaded_day, scratch_database
from load_asterisk import CARRIER, libpq

CHUNK = 1024 * 1024


def baseline_copy(url: str, selection: query.Selection, target: Path) -> float:
    import psycopg2

    conn = psycopg2.connect(libpq(url))
    try:
        cursor = conn.cursor()
        sql = query.render(cursor, query.report_select(selection))
        started = time.perf_counter()
        with target.open("wb") as out:
            cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", out)
        return time.perf_counter() - started
    finally:
        conn.close()


def evict(path: Path) -> None:
    """Drop the file from the page cache, so that the next read comes from the disk."""
    os.sync()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_file(path: Path) -> tuple[float, int, str]:
    evict(path)
    digest, size = hashlib.sha256(), 0
    started = time.perf_counter()
    with path.open("rb") as src:
        while piece := src.read(CHUNK):
            digest.update(piece)
            size += len(piece)
    return time.perf_counter() - started, size, digest.hexdigest()


def download(url: str) -> tuple[float, int, str]:
    digest, size = hashlib.sha256(), 0
    started = time.perf_counter()
    with httpx.stream("GET", url, timeout=600) as response:
        response.raise_for_status()
        for piece in response.iter_bytes(CHUNK):
            digest.update(piece)
            size += len(piece)
    return time.perf_counter() - started, size, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url, drop = scratch_database(args.database_url)
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="cdrflow-bench-") as tmp:
            work = Path(tmp)
            engine = loaded_day(url, CARRIER, work, args.rows)
            with engine.begin() as conn:
                first, last = conn.execute(text("SELECT min(start_time), max(start_time) FROM calls")).one()
                token = credentials.create(conn, "token", None)[1]
            engine.dispose()
            start = first.replace(hour=0, minute=0, second=0, microsecond=0)
            end = max(last + timedelta(seconds=1), start + timedelta(days=1))
            body = {
                "start_time": start.isoformat(),
                "end_time": end.isoformat(),
                "call_types": [1, 2],
                "record_types": [1, 2],
                "report_name": "bench",
            }
            selection = query.Selection(None, start, end, [1, 2], [1, 2], [], [])
            copy_seconds = baseline_copy(normalise_url(url), selection, work / "baseline.csv")
            read_seconds, read_bytes, _ = read_file(work / "baseline.csv")

            env = {**os.environ, "CDRFLOW_DATABASE_URL": normalise_url(url), "CDRFLOW_STATE_DIR": str(work / "state")}
            env["CDRFLOW_ARTIFACT_STORE"] = (work / "artifacts").as_uri()
            server = api_servers.start(
                normalise_url(url), work / "state", env={"CDRFLOW_ARTIFACT_STORE": env["CDRFLOW_ARTIFACT_STORE"]}
            )
            headers = {"Authorization": f"Bearer {token}"}
            exe = str(Path(sys.executable).parent / "cdrflow")
            started = time.perf_counter()
            created = httpx.post(server.base_url + "/reporting/cdr_requests", json=body, headers=headers, timeout=60)
            created.raise_for_status()
            ident = created.json()["id"]
            built = subprocess.run([exe, "reports", "build", "--once"], env=env, capture_output=True, text=True)
            assert built.returncode == 0, built.stderr
            report = httpx.get(f"{server.base_url}/reporting/cdr_requests/{ident}", headers=headers, timeout=60).json()
            request_seconds = time.perf_counter() - started
            assert report["status"] == 2, report
            for artefact in (work / "artifacts").rglob("*.csv"):
                evict(artefact)  # the download reads it from the disk too
            got_seconds, got_bytes, _ = download(report["report_url"])
        print(f"{args.rows:,} calls; the report: {got_bytes:,} bytes (the baseline file {read_bytes:,} bytes)")
        print(f"{'':44} {'seconds':>8} {'ratio':>6}")
        print(f"{'COPY (SELECT ...) TO a file (baseline)':44} {copy_seconds:>8.2f} {1:>6.2f}")
        print(
            f"{'request -> Complete (POST, build, GET)':44} {request_seconds:>8.2f} {request_seconds / copy_seconds:>6.2f}"
        )
        print(f"{'reading the file from disk (baseline)':44} {read_seconds:>8.2f} {1:>6.2f}")
        print(f"{'download of report_url over HTTP':44} {got_seconds:>8.2f} {got_seconds / read_seconds:>6.2f}")
        print("Goals (issue 12): request to Complete within 1.5x the COPY; the download within 1.2x reading the file.")
    finally:
        if server:
            server.stop()
        create_engine(normalise_url(url)).dispose()
        drop()


if __name__ == "__main__":
    main()
