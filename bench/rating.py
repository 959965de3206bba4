"""Benchmark: a billrun (rating, charges written, invoice lines) against PostgreSQL's COPY of the
same calls.

The calls: one day of a generated 21-column Asterisk Master.csv (time order, numbers repeating as a
day's traffic does), loaded by cdrflow's loader (untimed). The deck: ``--prefixes`` prefixes (the
callees' country code and 1 to 6 more digits, so most calls find a long prefix), every rate 60/60
or 1/1 with a connect fee on some, one version. Every account of the calls pays that deck, daily.

Baseline, in the same run on the same server: ``COPY`` of the same calls (every column of
``calls``) from a file into a table shaped like ``calls`` (same columns, primary key and
indexes, not partitioned): what PostgreSQL takes to write those rows once.
Measured: ``run_billrun(engine, "daily", day)`` in a fresh process (with its start-up, without
Python's), and its peak RSS; then the same billrun again (nothing left to charge).

The billrun's own log line says where its time went (reading and rating, with the charges
written meanwhile; invoice lines and counts; billing feed); it is printed with the machine's load.

Usage: python bench/rating.py [--calls 200000] [--prefixes 50000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from sqlalchemy import create_engine, text

from cdrflow.billing import decks
from cdrflow.billing.model import Deck, DeckVersion, Rate, Slot
from cdrflow.config.account_file import Account
from cdrflow.dev import generate
from cdrflow.warehouse import accounts
from cdrflow.warehouse.db import normalise_url
from common import loaded_day, run_child, scratch_database
from load_asterisk import CARRIER, libpq

BILLRUN = """
import logging, os, sys, time
from sqlalchemy import create_engine
from cdrflow.billing.billrun import run_billrun
url, day = sys.argv[1:3]
steps = []
class Steps(logging.Handler):
    def emit(self, record):
        if " legs read and rated in " in record.getMessage():
            steps.append(record.getMessage())
billrun_log = logging.getLogger("cdrflow.billing.billrun")
billrun_log.setLevel(logging.INFO)
billrun_log.addHandler(Steps())
engine = create_engine(url)
started = time.perf_counter()
run = run_billrun(engine, "daily", day)
first = time.perf_counter() - started
started = time.perf_counter()
again = run_billrun(engine, "daily", day)
RESULT = {"seconds": first, "again": time.perf_counter() - started, "calls": run.calls, "rated": run.rated,
          "unrated": sum(run.unrated.values()), "new_again": again.new, "steps": steps,
          "load": os.getloadavg()}
"""


def deck(prefixes: int, seed: int = 7) -> DeckVersion:
    """``prefixes`` distinct prefixes under +1 and +44, rates in a few shapes."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    while len(seen) < prefixes:
        country = "1" if rng.random() < 0.5 else "44"
        seen.add(country + "".join(map(str, rng.integers(0, 10, int(rng.integers(1, 7))))))
    rates = []
    for i, prefix in enumerate(sorted(seen)):
        price = Decimal(int(rng.integers(5, 500))) / 1000
        slots = (Slot(0, price, 60, 60),) if i % 2 else (Slot(0, price, 60, 1),)
        fee = Decimal("0.01") if i % 5 == 0 else Decimal(0)
        rates.append(Rate(prefix=prefix, destination=f"dest {prefix}", slots=slots, connect_fee=fee, call_type="I"))
    return DeckVersion(Deck(name="bench", currency="USD"), date(2020, 1, 1), tuple(rates))


def baseline_copy(url: str, work: Path) -> float:
    """COPY of every column of the calls into a table shaped like calls (not partitioned)."""
    import psycopg2

    conn = psycopg2.connect(libpq(url))
    conn.autocommit = True
    dump = work / "calls.copy"
    with conn.cursor() as cur:
        with open(dump, "wb") as f:
            cur.copy_expert("COPY (SELECT * FROM calls) TO STDOUT WITH (FORMAT binary)", f)
        cur.execute("CREATE TABLE calls_baseline (LIKE calls INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cur.execute("ALTER TABLE calls_baseline ADD PRIMARY KEY (carrier, record_key, start_time)")
        cur.execute("CREATE INDEX ON calls_baseline USING brin (file_id)")
        started = time.perf_counter()
        with open(dump, "rb") as f:
            cur.copy_expert("COPY calls_baseline FROM STDIN WITH (FORMAT binary)", f)
        seconds = time.perf_counter() - started
        cur.execute("DROP TABLE calls_baseline")
    conn.close()
    dump.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", "--calls", dest="rows", type=int, default=200_000)
    parser.add_argument("--prefixes", type=int, default=50_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url, drop = scratch_database(args.database_url)
    try:
        with tempfile.TemporaryDirectory(prefix="cdrflow-bench-") as tmp:
            work = Path(tmp)
            engine = loaded_day(url, CARRIER, work, args.rows)
            day = generate.demo_day()
            with engine.begin() as conn:
                decks.store(conn, deck(args.prefixes), "bench")
                ids = [r[0] for r in conn.execute(text("SELECT DISTINCT account_id FROM calls"))]
                accounts.sync(conn, [Account(a, a, "bench", cycle="daily") for a in ids])
            engine.dispose()
            raw = baseline_copy(url, work)
            run = run_child(BILLRUN, normalise_url(url), day.date().isoformat())
        print(
            f"{args.rows:,} calls, {args.prefixes:,} prefixes, {len(ids)} accounts: "
            f"{run['rated']:,} rated, {run['unrated']:,} unrated"
        )
        print(f"{'':28} {'seconds':>8} {'ratio':>6} {'peak RSS MiB':>13}")
        print(f"{'COPY of the calls (baseline)':28} {raw:>8.2f} {1:>6.2f}")
        print(f"{'billrun':28} {run['seconds']:>8.2f} {run['seconds'] / raw:>6.2f} {run['peak_rss_mib']:>13.0f}")
        print(f"{'the same billrun again':28} {run['again']:>8.2f} {run['again'] / raw:>6.2f}")
        for step in run["steps"]:
            print("where the time went:", step.split(": ", 1)[1])
        print(f"load average when the billrun ended: {' '.join(f'{x:.2f}' for x in run['load'])}")
        print("Goal (issue 11): the billrun within 1.5x the COPY.")
    finally:
        create_engine(normalise_url(url)).dispose()
        drop()


if __name__ == "__main__":
    main()
