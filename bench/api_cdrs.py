"""Benchmark: the CDR list route (seed 002/003, ``GET /v2/accounts/{id}/cdrs``) under load.

The data: one day of a generated 21-column Asterisk Master.csv (time order, real layout), loaded
by cdrflow's loader (untimed). The server: ``uvicorn --factory cdrflow.api.app:standalone_app``
(``--workers``, default 2: one per core on these machines), on loopback. The load: ``--clients``
concurrent clients (default 200, each one connection, httpx async) for ``--seconds`` (default 30),
each request one page (50 CDRs, Kazoo's default) of one account over a random hour of the day,
with an API token. Every answer must be 200 with a Kazoo envelope: an error is counted and shown.

Baseline, in the same run on the same server: the same SELECT the route runs (built by
``cdrflow.api.cdr_query.listing``, the same accounts and hours), executed directly in
PostgreSQL by ``--direct-threads`` threads (default 40: the API's connection pool per worker)
for 10 s, each with its own connection. Printed: requests, errors, throughput, p50 / p90 / p99
latencies of both, and the ratios.

Usage: python bench/api_cdrs.py [--rows 200000] [--clients 200] [--seconds 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import create_engine, text
from tests.servers import api as api_servers

from cdrflow.api import cdr_query
from cdrflow.api.kazoo import TimeRange, to_gregorian
from cdrflow.warehouse import credentials
from cdrflow.warehouse.db import normalise_url
from common import loaded_day, scratch_database
from load_asterisk import CARRIER

PAGE = 50


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return at(0.50), at(0.90), at(0.99)


def windows(day_start, accounts: list[str], n: int, seed: int = 1) -> list[tuple[str, TimeRange]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        hour = day_start + timedelta(hours=rng.randrange(24))
        first = to_gregorian(hour)
        out.append((rng.choice(accounts), TimeRange(first, first + 3599)))
    return out


async def api_load(base: str, tokens: dict[str, str], work, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(i: int) -> None:
        k = i
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            while time.monotonic() < stop:
                account, window = work[k % len(work)]
                k += clients
                params = {"created_from": window.created_from, "created_to": window.created_to}
                started = time.perf_counter()
                try:
                    r = await http.get(
                        f"/v2/accounts/{account}/cdrs", params=params, headers={"X-Auth-Token": tokens[account]}
                    )
                    ok = r.status_code == 200 and r.json().get("status") == "success"
                    reason = None if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    reason = type(exc).__name__
                latencies.append(time.perf_counter() - started)
                if reason:
                    errors[reason] = errors.get(reason, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - started}


def direct_load(url: str, work, threads: int, seconds: float) -> dict:
    engine = create_engine(url, pool_size=threads, max_overflow=0)
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        k, mine = i, []
        with engine.connect() as conn:
            while time.monotonic() < stop:
                account, window = work[k % len(work)]
                k += threads
                started = time.perf_counter()
                conn.execute(cdr_query.listing(account, window, limit=PAGE + 1)).fetchall()
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    engine.dispose()
    return {"latencies": latencies, "seconds": time.perf_counter() - started}


def line(name: str, result: dict, base_p50: float | None) -> str:
    p50, p90, p99 = percentiles(result["latencies"])
    n = len(result["latencies"])
    ratio = f"{p50 / base_p50:>6.1f}" if base_p50 else f"{1:>6.1f}"
    errors = sum(result.get("errors", {}).values())
    return f"{name:34} {n:>8,} {errors:>6} {n / result['seconds']:>8.0f} {p50:>8.1f} {p90:>8.1f} {p99:>8.1f} {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--direct-threads", type=int, default=40)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url, drop = scratch_database(args.database_url)
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="cdrflow-bench-") as tmp:
            work_dir = Path(tmp)
            engine = loaded_day(url, CARRIER, work_dir, args.rows)
            with engine.begin() as conn:
                counts = conn.execute(
                    text("SELECT account_id, count(*) FROM calls GROUP BY account_id ORDER BY 2 DESC")
                ).all()
                first = conn.execute(text("SELECT min(start_time) FROM calls")).scalar_one()
                tokens = {a: credentials.create(conn, "token", a)[1] for a, _ in counts}
            engine.dispose()
            day_start = first.replace(hour=0, minute=0, second=0, microsecond=0)
            work = windows(day_start, [a for a, _ in counts], 5000)
            print(
                f"{args.rows:,} calls of one day, {len(counts)} accounts (largest {counts[0][1]:,} calls); "
                f"pages of {PAGE} over a random hour"
            )
            direct = direct_load(normalise_url(url), work, args.direct_threads, 10)
            server = api_servers.start(normalise_url(url), work_dir / "state", workers=args.workers)
            loaded = asyncio.run(api_load(server.base_url, tokens, work, args.clients, args.seconds))
        base = percentiles(direct["latencies"])[0]
        print(
            f"{'':34} {'requests':>8} {'errors':>6} {'per s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p50 x':>6}"
        )
        print(line(f"the query in PostgreSQL ({args.direct_threads} threads)", direct, None))
        print(line(f"the route ({args.clients} clients, {args.workers} workers)", loaded, base))
        if loaded["errors"]:
            print("errors:", loaded["errors"])
        print(f"Goal (issue 12): {args.clients} concurrent clients for {args.seconds:.0f} s with no error.")
    finally:
        if server:
            server.stop()
        create_engine(normalise_url(url)).dispose()
        drop()


if __name__ == "__main__":
    main()
