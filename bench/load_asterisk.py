"""Benchmark: a generated Asterisk Master.csv through the whole path, against PostgreSQL's COPY.

The files: one day of calls (21 columns, the layout of current Asterisk versions, with
``linkedid`` and ``sequence``; ``--columns 18`` for the older one, whose record key is the longer
documented fallback), written in time order as a PBX appends its
Master.csv (a record when its call ends; ``uniqueid`` counters rising with the start), and
the same day shuffled (random order within the day, what this benchmark used to load).

Baselines, measured in the same run on the same server, on fresh databases:
  raw COPY    ``COPY`` of the file into a table of its columns as text with a primary key
              on the record id (uniqueid, sequence, start; 18 columns: uniqueid, start):
              PostgreSQL loading the file by itself.
  floor       the rows cdrflow writes, COPYed into ``calls`` alone: the binary payloads
              cdrflow builds (in primary key order), sent through the loader's own writer,
              one transaction; parsing, validating and building them is done before the
              clock starts. No loader can beat it without making the row or its indexes
              cheaper.
cdrflow, in a fresh process (its peak RSS is reported):
  start-up    from the process's start to the first byte of the file read: interpreter,
              imports (pandas, SQLAlchemy...), first connection, and Great Expectations
              imported with the suites built (``cdrflow.orchestration.preload``), as the
              scheduler or Celery worker does before it forks its task processes: a processing
              task starts with all of it done. ``--no-preload``: GX imported by the load
              itself, in a thread, as ``cdrflow load`` does (the load figure then includes
              what of the import the file's first chunks wait for).
  register    stream, SHA1, raw store, registry row.
  load        parse + validate + load (``process_file``): compare with the floor.
  cdrflow     register + load (without start-up), the in-process figure: compare with raw COPY.
  command     ``cdrflow load FILE --carrier bench`` run as a user runs it (wall clock of the
              whole process: start-up, migrations check, register, load), its own row.

Each figure is the median of ``--repeat`` runs (a single COPY varies by 20% here from run to
run); the runs alternate between baselines, cdrflow and the two files. ``--memory-rows`` also
loads a larger time-ordered file once in process, for its peak RSS (memory must not grow with
the file).

Usage: python bench/load_asterisk.py [--rows 1000000] [--repeat 3] [--order both|time|shuffled]
                                     [--memory-rows 5000000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg2
from sqlalchemy.engine import make_url

from cdrflow.dev import generate
from cdrflow.formats.asterisk_csv import ALL_COLUMNS
from cdrflow.warehouse import carriers
from common import run_child, scratch_database, warehouse

CARRIER = carriers.Carrier(code="bench", name="Benchmark", file_type="asterisk_csv")

# The start-up ends at the first open of the file (an audit hook sees every open).
CDRFLOW = """
import os, sys, time
url, store_url, path = sys.argv[1:4]
SPAWNED = float(os.environ["CDRFLOW_BENCH_SPAWNED"])
FIRST_READ = []
def _first_read(event, args):
    if event == "open" and not FIRST_READ and str(args[0]) == path:
        FIRST_READ.append((time.time(), time.perf_counter()))
sys.addaudithook(_first_read)
if os.environ.get("CDRFLOW_BENCH_PRELOAD") == "1":  # as a worker that forks task processes has
    from cdrflow.orchestration.preload import preload
    preload()
from sqlalchemy import create_engine
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import register_file
from cdrflow.loading.batches import process_file
engine = create_engine(url)
store = RawStore(store_url)
reg = register_file(engine, store, path, file_name=path.rsplit('/', 1)[-1], carrier='bench', file_source='upload')
registered = time.perf_counter()
result = process_file(engine, store, reg.file_id)
done = time.perf_counter()
(wall, first) = FIRST_READ[0]
RESULT = {"startup": wall - SPAWNED, "register": registered - first, "load": done - registered,
          "cdrflow": done - first, "status": result.status, "loaded": result.loaded, "rejected": result.rejected}
"""

# The finished rows, as the loader builds them (load_file's path), then only their COPY timed.
FLOOR = """
import sys, time
from sqlalchemy import create_engine, text
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import register_file
from cdrflow.loading.chunks import options_for, validated_chunks
from cdrflow.loading.payloads import Batch, column_kinds
from cdrflow.loading.writer import Writer
from cdrflow.warehouse import carriers
url, store_url, path = sys.argv[1:4]
engine = create_engine(url)
store = RawStore(store_url)
reg = register_file(engine, store, path, file_name=path.rsplit('/', 1)[-1], carrier='bench', file_source='upload')
with engine.connect() as conn:
    carrier = carriers.get(conn, 'bench')
    key = conn.execute(text("SELECT stored_file_id FROM cdr_files WHERE id = :id"), {"id": reg.file_id}).scalar()
dbapi = engine.raw_connection().driver_connection
kinds = column_kinds(dbapi)
batches = []
with store.open(key) as stream:
    for chunk in validated_chunks(stream, carrier.file_type, options_for(carrier, carrier.file_type)):
        assert not chunk.rejected, chunk.rejected[:3]
        batch = Batch.prepare(chunk.calls.drop(columns=["raw_text"], errors="ignore"), 'bench', reg.file_id, kinds)
        batch.frame = batch.frame.iloc[:0]  # the writer reads it only when the key refuses a row
        batches.append(batch)
        del chunk
with dbapi.cursor() as cur:  # the month partitions exist before the clock starts
    cur.execute("SET TimeZone = 'UTC'")
    for month in sorted({p[0] for b in batches for p in b.payloads}):
        cur.execute("SELECT cdrflow_ensure_calls_partition(%s::timestamptz)", (month + "-01 00:00:00+00",))
dbapi.commit()
writer = Writer(dbapi, 'bench', reg.file_id, kinds)
started = time.perf_counter()
for batch in batches:
    writer.write(batch)
dbapi.commit()
RESULT = {"seconds": time.perf_counter() - started, "loaded": writer.loaded,
          "formats": sorted({p[2] for b in batches for p in b.payloads})}
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


def baseline_copy(url: str, path: Path, width: int) -> float:
    columns = [c if c != "end" else "end_" for c in ALL_COLUMNS[:width]]
    key = "uniqueid, sequence, start" if width == 21 else "uniqueid, start"
    conn = psycopg2.connect(libpq(url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE baseline_master (" + ", ".join(f"{c} text" for c in columns) + f", PRIMARY KEY ({key}))"
        )
        started = time.perf_counter()
        with open(path, "rb") as f:
            cur.copy_expert("COPY baseline_master FROM STDIN WITH (FORMAT csv)", f, size=1 << 20)
        seconds = time.perf_counter() - started
        cur.execute("DROP TABLE baseline_master")
    conn.close()
    return seconds


def command(url: str, store_url: str, path: Path, rows: int) -> float:
    """Wall clock of ``cdrflow load`` on ``path``, as a user runs it."""
    cli = Path(sys.executable).with_name("cdrflow")
    env = {**os.environ, "CDRFLOW_DATABASE_URL": url, "CDRFLOW_RAW_STORE": store_url}
    started = time.perf_counter()
    out = subprocess.run([str(cli), "load", str(path), "--carrier", "bench"], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if out.returncode or f"{rows} calls loaded" not in out.stdout:
        raise SystemExit(f"{cli} load failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return seconds


@contextmanager
def fresh_warehouse(database_url: str | None, work: Path) -> Iterator[tuple[str, str]]:
    """A new migrated database with the bench carrier, and an empty raw store: (url, store url)."""
    url, drop = scratch_database(database_url)
    try:
        warehouse(url, CARRIER).dispose()
        yield url, (work / "raw").as_uri()
    finally:
        drop()
        shutil.rmtree(work / "raw", ignore_errors=True)


def run_once(
    path: Path, rows: int, database_url: str | None, work: Path, everything: bool, width: int, preload: bool = True
) -> dict:
    """One run of each measurement on ``path``, each on a fresh database; ``everything``: also
    the floor and the command (else only raw COPY and cdrflow in process)."""
    with fresh_warehouse(database_url, work) as (url, store_url):
        raw = baseline_copy(url, path, width)  # its table is dropped: calls is still empty
        run = run_child(CDRFLOW, url, store_url, str(path), env={"CDRFLOW_BENCH_PRELOAD": "1" if preload else "0"})
    assert run["status"] == "loaded" and run["loaded"] == rows, run
    run["raw"] = raw
    if everything:
        with fresh_warehouse(database_url, work) as (url, store_url):
            floor = run_child(FLOOR, url, store_url, str(path))
        assert floor["loaded"] == rows, floor
        if floor["formats"] != ["binary"]:
            print(f"note: the floor sent {'/'.join(floor['formats'])} COPY payloads, as cdrflow does", file=sys.stderr)
        run["floor"] = floor["seconds"]
        with fresh_warehouse(database_url, work) as (url, store_url):
            run["command"] = command(url, store_url, path, rows)
    return run


def medians(runs: list[dict]) -> dict:
    """The median of each figure over ``runs`` (peak RSS: the largest)."""
    out = {k: statistics.median(r[k] for r in runs) for k, v in runs[0].items() if isinstance(v, float)}
    out["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    return out


HEADER = (
    f"{'file':>8} {'run':>12} {'raw COPY s':>10} {'floor s':>7} {'start-up s':>10} {'register s':>10} "
    f"{'load s':>6} {'cdrflow s':>9} {'rows/s':>8} {'cdrflow/raw':>11} {'load/floor':>10} {'peak RSS MiB':>12}"
)


def print_rows(order: str, rows: int, r: dict) -> None:
    def s(key: str, width: int) -> str:
        return f"{r[key]:>{width}.2f}" if key in r else f"{'-':>{width}}"

    load_floor = f"{r['load'] / r['floor']:>10.2f}" if "floor" in r else f"{'-':>10}"
    print(
        f"{order:>8} {'in process':>12} {s('raw', 10)} {s('floor', 7)} {s('startup', 10)} {s('register', 10)} "
        f"{s('load', 6)} {s('cdrflow', 9)} {rows / r['cdrflow']:>8.0f} {r['cdrflow'] / r['raw']:>11.2f} "
        f"{load_floor} {r['peak_rss_mib']:>12.0f}"
    )
    if "command" in r:
        print(
            f"{order:>8} {'cdrflow load':>12} {s('raw', 10)} {s('floor', 7)} {'-':>10} {'-':>10} {'-':>6} "
            f"{s('command', 9)} {rows / r['command']:>8.0f} {r['command'] / r['raw']:>11.2f} {'-':>10} {'-':>12}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--order", choices=["both", *generate.ORDERS], default="both", help="row order of the file")
    parser.add_argument("--memory-rows", type=int, default=0)
    parser.add_argument("--database-url")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (medians are printed)")
    parser.add_argument("--columns", type=int, choices=[18, 21], default=21, help="Asterisk layout of the files")
    parser.add_argument(
        "--no-preload", action="store_true", help="in process: GX imported by the load itself, not before it"
    )
    args = parser.parse_args()
    orders = ["time", "shuffled"] if args.order == "both" else [args.order]
    with tempfile.TemporaryDirectory(prefix="cdrflow-bench-") as tmp:
        work = Path(tmp)
        files = {
            order: generate.write_asterisk_csv_fast(
                work / f"Master-{order}.csv", args.rows, seed=args.rows, order=order, columns=args.columns
            )
            for order in orders
        }
        size = files[orders[0]].stat().st_size
        print(
            f"{args.rows:,} rows ({size / 1e6:.0f} MB, {args.columns} columns) per file, medians of {args.repeat} run(s)",
            flush=True,
        )
        runs: dict[str, list[dict]] = {order: [] for order in orders}
        for _ in range(args.repeat):  # alternate, so that drift on the machine hits every figure
            for order in orders:
                runs[order].append(
                    run_once(
                        files[order],
                        args.rows,
                        args.database_url,
                        work,
                        everything=True,
                        width=args.columns,
                        preload=not args.no_preload,
                    )
                )
        for path in files.values():
            path.unlink()
        print(HEADER)
        for order in orders:
            print_rows(order, args.rows, medians(runs[order]))
        if args.memory_rows:
            path = generate.write_asterisk_csv_fast(
                work / "Master-memory.csv", args.memory_rows, seed=args.memory_rows, order="time", columns=args.columns
            )
            print(f"\n{args.memory_rows:,} rows ({path.stat().st_size / 1e6:.0f} MB), time order, one run, for memory:")
            print(HEADER)
            print_rows(
                "time",
                args.memory_rows,
                medians(
                    [
                        run_once(
                            path, args.memory_rows, args.database_url, work, False, args.columns, not args.no_preload
                        )
                    ]
                ),
            )
            path.unlink()
        print(
            "raw COPY: the file into its columns as text + PK on the record id; floor: cdrflow's finished rows COPYed into calls alone;\n"
            "start-up: process start to first byte read (Great Expectations preloaded, as a worker does, unless --no-preload);\n"
            "cdrflow = register + load, after start-up;\n"
            "cdrflow load: the whole command, wall clock. Goals: load/floor <= 1.15, cdrflow load/raw <= 2.0."
        )


if __name__ == "__main__":
    main()
