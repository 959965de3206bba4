"""Benchmark: 1,000 files of 1,000 rows against one file of 1,000,000 rows, through the same path.

The same calls on both sides: one day written in time order as a PBX appends its Master.csv
(``--order shuffled``: in random order within the day), and the same file cut into
consecutive pieces of ``--rows`` lines, as a PBX that rotates its file every few minutes
would deliver it.

The path is what the DAGs run: the bucket collector takes the files from a local upload
folder (stream, SHA1, raw store, registry row, move to processed/), then the processing
DAG's steps claim them, cut them into batches and process each batch (parse, validate,
load in one transaction per file). Each side runs in a fresh process on a fresh database, one
worker (batches one after another), so the ratio measures what files cost per file.
Goal: the 1,000 files in at most 3x the time of the single file.

Usage: python bench/many_files.py [--files 1000] [--rows 1000] [--repeat 1] [--order time|shuffled]
                                  [--database-url URL]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cdrflow.dev import generate
from cdrflow.warehouse import carriers
from common import run_child, scratch_database, warehouse

PIPELINE = """
import sys, time
from sqlalchemy import create_engine
from cdrflow.intake import claims
from cdrflow.validation import suites
from cdrflow.config.carrier_file import BucketSource
from cdrflow.loading.batches import process_batch
from cdrflow.intake.rawstore import RawStore
from cdrflow.sources.bucket import collect
url, store_url, folder = sys.argv[1:4]
engine = create_engine(url)
store = RawStore(store_url)
t = time.perf_counter()
found = collect(engine, store, "bench", BucketSource(url=folder))
t_collect = time.perf_counter() - t
loaded = files = 0
for batch in claims.batches(claims.claim(engine, "bench")):
    outcome = process_batch(engine, store, batch)
    assert not outcome.errors, outcome.errors
    loaded += sum(r.loaded for r in outcome.results)
    files += len(outcome.results)
RESULT = {"seconds": time.perf_counter() - t, "collect_seconds": t_collect, "files": files,
          "collected": len(found), "loaded": loaded}
"""


def run_once(database_url: str | None, work: Path, folder: Path) -> dict:
    url, drop = scratch_database(database_url)
    try:
        warehouse(url, carriers.Carrier(code="bench", name="Benchmark", file_type="asterisk_csv")).dispose()
        drop_copy = work / "drop"
        shutil.copytree(folder, drop_copy)  # the collector moves what it takes
        return run_child(PIPELINE, url, (work / "raw").as_uri(), str(drop_copy))
    finally:
        drop()
        shutil.rmtree(work / "raw", ignore_errors=True)
        shutil.rmtree(work / "drop", ignore_errors=True)


def cut(big: Path, folder: Path, rows: int) -> int:
    """Write the lines of ``big`` into ``folder`` as files of ``rows`` lines each, in order
    (no value of the generated files spans two lines); returns how many files."""
    files = 0
    with open(big, "rb") as lines:
        while piece := list(islice(lines, rows)):
            (folder / f"Master-{files:05d}.csv").write_bytes(b"".join(piece))
            files += 1
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1000, help="rows per small file")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side (medians are printed)")
    parser.add_argument("--order", choices=generate.ORDERS, default="time", help="row order of the day's calls")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    total = args.files * args.rows
    with tempfile.TemporaryDirectory(prefix="cdrflow-bench-") as tmp:
        work = Path(tmp)
        one, many = work / "one", work / "many"
        one.mkdir(), many.mkdir()
        generate.write_asterisk_csv_fast(one / "Master-big.csv", total, seed=1, order=args.order, columns=21)
        cut(one / "Master-big.csv", many, args.rows)
        results = {"one": [], "many": []}
        for _ in range(args.repeat):  # alternate, so that drift on the machine hits both sides
            for side, folder in (("one", one), ("many", many)):
                r = run_once(args.database_url, work, folder)
                assert r["loaded"] == total, r
                results[side].append(r)
        print(f"{args.order}-ordered calls, medians of {args.repeat} run(s)")
        print(f"{'side':>24} {'files':>6} {'collect s':>9} {'total s':>8} {'rows/s':>9} {'peak RSS MiB':>12}")
        for side, label in (("one", f"1 file x {total:,} rows"), ("many", f"{args.files} files x {args.rows:,} rows")):
            r = sorted(results[side], key=lambda x: x["seconds"])[len(results[side]) // 2]
            print(
                f"{label:>24} {r['files']:>6} {r['collect_seconds']:>9.2f} {r['seconds']:>8.2f} "
                f"{total / r['seconds']:>9.0f} {max(x['peak_rss_mib'] for x in results[side]):>12.0f}"
            )
        ratio = statistics.median(r["seconds"] for r in results["many"]) / statistics.median(
            r["seconds"] for r in results["one"]
        )
        print(f"ratio (many files / one file): {ratio:.2f}  (goal: at most 3.0)")


if __name__ == "__main__":
    main()
