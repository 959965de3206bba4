"""Benchmark: a generated Asterisk Master.csv through the whole path, against PostgreSQL's COPY.

Baseline (same run, same server): ``COPY`` of the file into a table with its 18 columns as
text and a primary key on (uniqueid, start) - PostgreSQL loading the file by itself.
cdrflow: register (stream, SHA1, raw store, registry row) + parse + validate + load into the
indexed, partitioned ``calls`` table, in a fresh process whose peak RSS is reported.

Usage: python bench/load_asterisk.py [--rows 1000000] [--repeat 3] [--memory-rows 5000000] [--database-url URL]
Each figure is the median of ``--repeat`` runs; ``--memory-rows`` also loads a larger file
once and prints its peak RSS (memory must not grow with the file).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg2
from sqlalchemy.engine import make_url

from cdrflow.dev import generate
from cdrflow.formats.asterisk_csv import ALL_COLUMNS
from cdrflow.warehouse import carriers
from common import run_child, scratch_database, warehouse

CDRFLOW = """
import sys, time
from sqlalchemy import create_engine
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import register_file
from cdrflow.loading.batches import process_file
url, store_url, path = sys.argv[1:4]
engine = create_engine(url)
store = RawStore(store_url)
t = time.perf_counter()
reg = register_file(engine, store, path, file_name=path.rsplit('/', 1)[-1], carrier='bench', file_source='upload')
t_reg = time.perf_counter() - t
result = process_file(engine, store, reg.file_id)
RESULT = {"seconds": time.perf_counter() - t, "register_seconds": t_reg, "status": result.status,
          "loaded": result.loaded, "rejected": result.rejected}
"""


def libpq(url: str) -> str:
    u = make_url(url)
    parts = [f"dbname={u.database}", f"user={u.username or 'postgres'}"]
    host = u.query.get("host") or u.host
    if host:
        parts.append(f"host={host}")
    if u.port or u.query.get("port"):
        parts.append(f"port={u.port or u.query.get('port')}")
    return " ".join(parts)


def baseline_copy(url: str, path: Path) -> float:
    columns = [c if c != "end" else "end_" for c in ALL_COLUMNS[:18]]
    conn = psycopg2.connect(libpq(url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE baseline_master ("
            + ", ".join(f"{c} text" for c in columns)
            + ", PRIMARY KEY (uniqueid, start))"
        )
        started = time.perf_counter()
        with open(path, "rb") as f:
            cur.copy_expert("COPY baseline_master FROM STDIN WITH (FORMAT csv)", f, size=1 << 20)
        seconds = time.perf_counter() - started
        cur.execute("DROP TABLE baseline_master")
    conn.close()
    return seconds


def measure(rows: int, database_url: str | None, work: Path, repeat: int) -> dict:
    """Median of ``repeat`` alternating runs of the baseline and of cdrflow, each on a fresh
    database (a single COPY varies by 20% here from run to run)."""
    path = generate.write_asterisk_csv_fast(work / f"Master-{rows}.csv", rows, seed=rows)
    baselines, runs = [], []
    try:
        for _ in range(repeat):
            url, drop = scratch_database(database_url)
            try:
                warehouse(url, carriers.Carrier(code="bench", name="Benchmark", file_type="asterisk_csv")).dispose()
                baselines.append(baseline_copy(url, path))
                run = run_child(CDRFLOW, url, (work / "raw").as_uri(), str(path))
                assert run["status"] == "loaded" and run["loaded"] == rows, run
                runs.append(run)
            finally:
                drop()
                shutil.rmtree(work / "raw", ignore_errors=True)
    finally:
        path.unlink()
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {"baseline": statistics.median(baselines), **median, "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=0)
    parser.add_argument("--database-url")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (medians are printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cdrflow-bench-") as tmp:
        work = Path(tmp)
        print(
            f"{'rows':>9} {'COPY s':>8} {'cdrflow s':>9} {'register s':>10} {'rows/s':>9} "
            f"{'ratio':>6} {'peak RSS MiB':>12}"
        )
        for rows in [args.rows] + ([args.memory_rows] if args.memory_rows else []):
            r = measure(rows, args.database_url, work, args.repeat if rows == args.rows else 1)
            print(
                f"{rows:>9} {r['baseline']:>8.2f} {r['seconds']:>9.2f} {r['register_seconds']:>10.2f} "
                f"{rows / r['seconds']:>9.0f} {r['seconds'] / r['baseline']:>6.2f} {r['peak_rss_mib']:>12.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
