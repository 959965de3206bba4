"""Benchmark: the many-files load through the process cluster (``make cluster``), with two Celery
workers and with one, against the same files loaded in one process.

The cluster is docker-compose.yaml's services as processes (``tests/servers/cluster.py``:
Airflow on the CeleryExecutor, Redis, moto's S3 as the raw store, the warehouse on the
PostgreSQL at 127.0.0.1:5432), with one carrier whose source is a local upload folder. The
files are ``bench/many_files.py``'s: one generated day of 21-column Asterisk calls in time order,
cut into ``--files`` consecutive files of ``--rows`` lines. Nothing is driven by hand: the files
are renamed into the upload folder (atomically, all at once, or in ``--deliveries`` parts, each
dropped once the collector has registered the one before, as files keep arriving while the
cluster loads), the collector DAG registers them on its schedule (every 15 s here), its asset
starts ``cdrflow_process``, whose runs claim, load and report. Measured: from the drop to the
last call in the warehouse (``calls`` counted every 0.2 s), and to the files registered; then
which tasks ran where and how long each waited in its queue and ran (Airflow's task instances),
and the bytes a loaded call takes in the warehouse.

1. a warm-up drop of two files (untimed: the first runs of each DAG, the workers' first tasks);
2. both workers (``airflow-worker-1`` serves the collect and process queues, ``-2`` process);
3. ``airflow-worker-2`` SIGKILLed while idle (a lost machine), a new batch of distinct calls
   on ``airflow-worker-1`` alone.

Baseline, in the same run before the cluster starts: the first batch's files through
``bench/many_files.py``'s path in one fresh process (collect from a folder, claim, batches,
``process_batch``) on a fresh database. Printed: seconds, files/s, calls/s of each, the process
tasks and the hosts that ran them, the ratios.

Usage: python bench/cluster.py [--files 200] [--rows 1000] [--deliveries 1] [--concurrency 2]
                               [--pg-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from tests.servers import cluster as cluster_server

from cdrflow.config import settings
from cdrflow.dev import generate
from cdrflow.warehouse import scratch
from many_files import cut, run_once

CARRIER = "bench"
PROCESSING = ("cdrflow_collect_bucket", "cdrflow_process")
DAY = datetime(2026, 11, 2, tzinfo=UTC)


def write_batch(folder: Path, label: str, files: int, rows: int, first_index: int, day: datetime) -> int:
    """``files`` files of ``rows`` time-ordered calls each (one day cut in order), named
    ``<label>-NNNNN.csv``; call ids from ``first_index``, so batches never share a call."""
    folder.mkdir(parents=True)
    big = folder.parent / f"{label}-day.csv"
    generate.write_asterisk_csv_fast(
        big, files * rows, seed=first_index + 1, day=day, first_index=first_index, order="time", columns=21
    )
    written = cut(big, folder, rows)
    big.unlink()
    for path in sorted(folder.iterdir()):
        path.rename(folder / f"{label}-{path.name}")
    return written


def baseline(pg_url: str | None, folder: Path, work: Path, calls: int) -> dict:
    """The same files in one process (``bench/many_files.py``'s path), on a fresh database."""
    result = run_once(pg_url, work, folder)
    assert result["loaded"] == calls, result
    return result


def carriers_file(path: Path) -> Path:
    sources = [{"kind": "bucket", "url": f"uploads/{CARRIER}", "patterns": ["*.csv"]}]
    carrier = {"code": CARRIER, "name": "Benchmark", "file_type": "asterisk_csv", "sources": sources}
    path.write_text(yaml.safe_dump({"carriers": [carrier]}))
    return path


def counts(cluster) -> tuple[int, int]:
    """(files registered, calls loaded) in the cluster's warehouse."""
    row = cluster.query("warehouse", "SELECT (SELECT count(*) FROM cdr_files), (SELECT count(*) FROM calls)")[0]
    return int(row[0]), int(row[1])


def bytes_per_call(cluster) -> float:
    """What a loaded call occupies in the warehouse: ``calls``' partitions with their indexes."""
    size, calls = cluster.query(
        "warehouse",
        "SELECT (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
        "WHERE inhparent = 'calls'::regclass), (SELECT count(*) FROM calls)",
    )[0]
    return float(size) / max(int(calls), 1)


def step_times(tasks: list, task_id: str) -> tuple[float, float]:
    """(seconds queued, seconds running) of ``task_id``: the median over the runs, for
    ``collect`` the run that took the files (the longest; the others found nothing)."""
    mine = [(float(t.waited or 0), float(t.ran or 0)) for t in tasks if t.task_id == task_id and t.hostname]
    if not mine:
        return (0.0, 0.0)
    if task_id == "collect":
        return max(mine, key=lambda x: x[1])
    return (statistics.median(w for w, _ in mine), statistics.median(r for _, r in mine))


def runs_busy(cluster) -> int:
    return cluster.query(
        "metadata",
        "SELECT count(*) FROM dag_run WHERE dag_id = 'cdrflow_process' AND state NOT IN ('success', 'failed')",
    )[0][0]


def drop(cluster, staged: Path, deliveries: int, rows: int) -> dict:
    """Rename the staged files into the carrier's upload folder (in ``deliveries`` parts, each
    once the collector has registered the part before) and time it until every call is in the
    warehouse; then wait for the processing runs to end and read which tasks ran where."""
    target = cluster.uploads(CARRIER)
    names = sorted(staged.iterdir())
    parts = [names[i::deliveries] for i in range(deliveries)]  # every part spans the day
    files_before, calls_before = counts(cluster)
    want_files, want_calls = files_before + len(names), calls_before + len(names) * rows
    # runs over before the drop; a collector run already going may be the one that takes the files
    runs_before = {
        tuple(r)
        for r in cluster.query("metadata", "SELECT dag_id, run_id FROM dag_run WHERE state IN ('success', 'failed')")
    }
    start = time.monotonic()
    dropped = files_before
    for n, part in enumerate(parts):
        for path in part:
            path.rename(target / path.name)  # same file system: the collector never sees half a file
        dropped += len(part)
        if n < len(parts) - 1:
            cluster.wait(lambda d=dropped: counts(cluster)[0] >= d, f"{dropped} files registered", 300, every=0.2)
    registered = None
    while True:
        files, calls = counts(cluster)
        if registered is None and files >= want_files:
            registered = time.monotonic() - start
        if files >= want_files and calls >= want_calls:
            seconds = time.monotonic() - start
            break
        if time.monotonic() - start > 900:
            raise SystemExit(f"not loaded within 900 s ({files} files, {calls} calls)\n{cluster.tails()}")
        time.sleep(0.2)
    cluster.wait(lambda: runs_busy(cluster) == 0, "the processing runs over", 300, every=0.5)
    tasks = cluster.query(
        "metadata",
        "SELECT dag_id, run_id, task_id, hostname, state, EXTRACT(EPOCH FROM start_date - queued_dttm) AS waited, "
        "EXTRACT(EPOCH FROM end_date - start_date) AS ran FROM task_instance "
        "WHERE dag_id = 'cdrflow_process' OR (dag_id = 'cdrflow_collect_bucket' AND task_id = 'collect')",
    )
    steps = [t for t in tasks if (t.dag_id, t.run_id) not in runs_before]
    mine = [t for t in steps if t.task_id == "process" and t.hostname]  # not a run that claimed nothing
    return {
        "files": len(names),
        "calls": len(names) * rows,
        "seconds": seconds,
        "registered": registered,
        "runs": len({t.run_id for t in mine}),
        "tasks": len(mine),
        "hosts": sorted({t.hostname for t in mine if t.hostname}),
        "failed": sum(t.state in ("failed", "upstream_failed") for t in mine),
        "steps": {task_id: step_times(steps, task_id) for task_id in ("collect", "claim", "process", "report")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200, help="files per batch")
    parser.add_argument("--rows", type=int, default=1000, help="rows per file")
    parser.add_argument("--deliveries", type=int, default=1, help="parts each batch is dropped in")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery task slots per worker")
    parser.add_argument("--pg-url", help="PostgreSQL server for the cluster and the baseline (default 127.0.0.1:5432)")
    args = parser.parse_args()
    server, done = scratch.server_url(args.pg_url, settings.state_dir())
    with tempfile.TemporaryDirectory(prefix="cdrflow-bench-cluster-") as tmp:
        work = Path(tmp)
        staged = {}
        for n, (label, files) in enumerate((("warm", 2), ("two", args.files), ("one", args.files))):
            staged[label] = work / "staged" / label
            write_batch(staged[label], label, files, args.rows, first_index=n * 10_000_000, day=DAY)
        calls = args.files * args.rows
        copy = work / "baseline-files"
        copy.mkdir()
        for path in staged["two"].iterdir():
            (copy / path.name).write_bytes(path.read_bytes())
        base = baseline(server, copy, work, calls)
        print(f"in-process baseline: {base['seconds']:.2f} s", flush=True)

        cluster_settings = {
            "CDRFLOW_COLLECT_EVERY_MINUTES": "0.25",
            "CDRFLOW_WORKER_CONCURRENCY": str(args.concurrency),
            "CDRFLOW_CARRIERS": str(carriers_file(work / "carriers.yaml")),
        }
        t = time.monotonic()
        cluster = cluster_server.start(work / "run", server, cluster_settings)
        try:
            print(f"cluster up in {time.monotonic() - t:.0f} s", flush=True)
            cluster.unpause(*PROCESSING)
            results = {}
            results["warm"] = drop(cluster, staged["warm"], 1, args.rows)
            results["two"] = drop(cluster, staged["two"], args.deliveries, args.rows)
            cluster.kill_worker("airflow-worker-2")
            results["one"] = drop(cluster, staged["one"], args.deliveries, args.rows)
            results["bytes_per_call"] = bytes_per_call(cluster)
        finally:
            cluster.stop()
            done()
    report(args, base, results)


def report(args, base: dict, results: dict) -> None:
    calls = args.files * args.rows
    print(
        f"\n{args.files} files x {args.rows:,} rows ({calls:,} calls, 21-column Asterisk, time order), "
        f"{args.deliveries} deliveries, {args.concurrency} task slots per worker"
    )
    print(
        f"{'side':>34} {'registered s':>12} {'total s':>8} {'files/s':>8} {'calls/s':>9} {'runs':>5} {'tasks':>5}  hosts"
    )
    print(
        f"{'in one process (baseline)':>34} {base['collect_seconds']:>12.2f} {base['seconds']:>8.2f} "
        f"{args.files / base['seconds']:>8.1f} {calls / base['seconds']:>9,.0f}"
    )
    for key, label in (("two", "cluster, two workers"), ("one", "cluster, one worker")):
        r = results[key]
        print(
            f"{label:>34} {r['registered']:>12.2f} {r['seconds']:>8.2f} {r['files'] / r['seconds']:>8.1f} "
            f"{r['calls'] / r['seconds']:>9,.0f} {r['runs']:>5} {r['tasks']:>5}  {', '.join(r['hosts'])}"
        )
    for key, label in (("two", "two workers"), ("one", "one worker")):
        if results[key]["failed"]:
            print(f"  {label}: {results[key]['failed']} process task(s) did not succeed: see the cluster's logs")
        steps = ", ".join(f"{k} {w:.1f} + {d:.1f}" for k, (w, d) in results[key]["steps"].items())
        print(f"  {label}, tasks (s queued + s running; medians, collect the longest): {steps}")
    two, one = results["two"]["seconds"], results["one"]["seconds"]
    print(f"one worker / two workers: {one / two:.2f} (time)   two workers / in process: {two / base['seconds']:.2f}")
    print(f"warehouse: {results['bytes_per_call']:.0f} bytes per loaded call (calls' partitions with their indexes)")


if __name__ == "__main__":
    main()
