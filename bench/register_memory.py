"""Benchmark: registering a file (stream, SHA1, raw store, registry row) against `cp` + `sha1sum`.

For each size, the same file on disk is
  1. copied with coreutils `cp` and hashed with `sha1sum` (the baseline: the least any
     registration must do), then
  2. registered by cdrflow in a fresh process (so peak RSS is that of one registration).
Prints MB/s, the ratio to the baseline and the peak RSS of the registering process.

Usage: python bench/register_memory.py [--sizes-mb 10,100,1024] [--database-url URL]
Without --database-url a throwaway database is created on 127.0.0.1:5432 (or the embedded server).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cdrflow.warehouse import carriers
from common import run_child, scratch_database, warehouse

CHILD = """
import sys, time
from sqlalchemy import create_engine
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import register_file
url, store_url, path = sys.argv[1:4]
engine = create_engine(url)
store = RawStore(store_url)
t = time.perf_counter()
reg = register_file(engine, store, path, file_name=path.rsplit('/', 1)[-1], carrier='bench', file_source='upload')
RESULT = {"seconds": time.perf_counter() - t, "size": reg.size}
"""


def make_file(path: Path, size: int) -> None:
    line = b'"acct001","+15551234567","+442071234567","from-trunk","2026-11-01 10:00:00",60,"ANSWERED"\n'
    block = line * (1 << 20 // len(line) + 1)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", default="10,100,1024")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url, drop = scratch_database(args.database_url)
    warehouse(url, carriers.Carrier(code="bench", name="Benchmark")).dispose()
    work = Path(tempfile.mkdtemp(prefix="cdrflow-bench-"))
    print(f"{'size':>8} {'baseline s':>10} {'cdrflow s':>10} {'MB/s':>8} {'ratio':>6} {'peak RSS MiB':>12}")
    try:
        for mb in (int(s) for s in args.sizes_mb.split(",")):
            src = work / f"cdr-{mb}mb.csv"
            make_file(src, mb << 20)
            t = time.perf_counter()
            subprocess.run(["cp", str(src), str(work / "copy")], check=True)
            subprocess.run(["sha1sum", str(src)], check=True, capture_output=True)
            baseline = time.perf_counter() - t
            os.unlink(work / "copy")
            store = work / f"raw-{mb}"
            r = run_child(CHILD, url, store.as_uri(), str(src))
            print(
                f"{mb:>6}MB {baseline:>10.2f} {r['seconds']:>10.2f} {mb / r['seconds']:>8.0f} "
                f"{r['seconds'] / baseline:>6.2f} {r['peak_rss_mib']:>12.0f}"
            )
            shutil.rmtree(store)
            src.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        drop()


if __name__ == "__main__":
    main()
