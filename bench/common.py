"""What the benchmarks share: a throwaway warehouse database and peak-memory measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

from sqlalchemy import create_engine

from cdrflow.config import settings
from cdrflow.warehouse import carriers, migrations, scratch
from cdrflow.warehouse.db import normalise_url


def scratch_database(url: str | None = None) -> tuple[str, Callable[[], None]]:
    """A new empty database on ``url``'s server (default: 127.0.0.1:5432, else the embedded
    server under the state directory) and a function that drops it."""
    server, _ = scratch.server_url(url, settings.state_dir())  # the embedded server is left running
    return scratch.create(server, prefix="cdrflow_bench")


def loaded_day(url: str, carrier: carriers.Carrier, work, rows: int):
    """Migrate ``url``, add ``carrier`` and load one day of ``rows`` calls (a generated 21-column
    Master.csv, time-ordered, numbers repeating as a day's traffic does) with cdrflow's loader;
    returns an engine. Untimed: the benchmarks that use it measure what comes after."""
    from cdrflow.dev import generate
    from cdrflow.intake.rawstore import RawStore
    from cdrflow.intake.registry import register_file
    from cdrflow.loading.batches import process_file

    engine = warehouse(url, carrier)
    path = generate.write_asterisk_csv_fast(work / "Master.csv", rows, seed=3, order="time", columns=21)
    store = RawStore((work / "raw").as_uri())
    reg = register_file(engine, store, str(path), file_name=path.name, carrier=carrier.code, file_source="upload")
    assert process_file(engine, store, reg.file_id).status == "loaded"
    return engine


def warehouse(url: str, carrier: carriers.Carrier):
    """Migrate ``url`` and add ``carrier``; returns an engine."""
    engine = create_engine(normalise_url(url))
    migrations.upgrade(engine, settings.SQL_DIR)
    with engine.begin() as conn:
        carriers.upsert(conn, carrier)
    return engine


PEAK_RSS = """
def peak_rss_mib():
    # VmHWM is the peak of this process's own memory. ru_maxrss is not: Linux keeps it across
    # fork and exec, so a child of a big parent reports the parent's size.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh Python process; it prints one JSON line last. Adds the child's
    peak RSS in MiB as ``peak_rss_mib``. The child finds the wall-clock time (``time.time()``)
    at which it was started in the environment variable ``CDRFLOW_BENCH_SPAWNED``, to measure
    its start-up. ``env``: variables set for the child on top of this process's."""
    wrapper = code + PEAK_RSS + "\nimport json as _j\nprint(_j.dumps({**RESULT, 'peak_rss_mib': peak_rss_mib()}))\n"
    child_env = {**os.environ, **(env or {}), "CDRFLOW_BENCH_SPAWNED": repr(time.time())}
    out = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, env=child_env)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])
