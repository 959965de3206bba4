"""Benchmark: what each part of a loaded call costs PostgreSQL (the floor, taken apart).

The floor of ``bench/load_asterisk.py`` is cdrflow's finished rows COPYed into ``calls``. This
takes it apart: the same rows (parsed and validated once, untimed) are COPYed through the
loader's own writer into a fresh ``calls`` per variant, each variant changing one thing:

  calls as it is     the floor itself
  extras empty       every row's ``extras`` is ``{}`` (what the source fields without a column cost)
  extras as jsonb    the column as it was before migration 012: parsed into ``jsonb``
  extras as text     the column as ``text``: the same bytes, which PostgreSQL stores without
                     checking that they are JSON
  no file index      without the BRIN index on ``file_id``
  no time index      without the index on (start_time, account_id) (sql/025: the CDRs API's pages)
  no primary key     without (carrier, record_key, start_time): what the key's index costs
  no id sequence     without the ``id`` every row draws from a sequence (the billing feed's cursor)
  18-column key      the record key of an 18-column file (the documented fallback: uniqueid plus
                     the fields that tell forks apart, about 65 bytes) instead of the 21-column
                     file's ``uniqueid#sequence``

and, as the reference, ``raw COPY``: the file itself into a table of its columns as text with a
primary key on the record id (uniqueid, sequence, start). Figures are medians of ``--repeat``
runs, variants alternating; each is printed as a ratio to the floor.

Usage: python bench/row_cost.py [--rows 1000000] [--repeat 3] [--only NAME ...] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd
from sqlalchemy import create_engine

from cdrflow.dev import generate
from cdrflow.formats.asterisk_csv import ALL_COLUMNS
from cdrflow.formats.base import ParseOptions
from cdrflow.loading.chunks import validated_chunks
from cdrflow.loading.payloads import Batch, column_kinds
from cdrflow.loading.writer import Writer
from cdrflow.warehouse.db import normalise_url
from common import scratch_database, warehouse
from load_asterisk import CARRIER, libpq

Frames = list[pd.DataFrame]


def _fallback_keys(frames: Frames) -> Frames:
    """The 18-column file's key for the same rows (what asterisk_csv builds without a sequence)."""
    out = []
    for f in frames:
        extras = f["extras"].map(json.loads)
        parts = [
            f["carrier_call_id"],
            *(extras.map(lambda e, k=k: e.get(k, "")) for k in ("dstchannel", "lastapp", "lastdata")),
            f["disposition"].fillna(""),
            f["duration_seconds"].astype("string").fillna(""),
            f["billing_seconds"].astype("string").fillna(""),
        ]
        key = parts[0].astype(str)
        for part in parts[1:]:
            key = key + "|" + part.astype(str)
        out.append(f.assign(record_key=key))
    return out


VARIANTS: dict[str, tuple[list[str], Callable[[Frames], Frames] | None]] = {
    "calls as it is": ([], None),
    "extras empty": ([], lambda frames: [f.assign(extras="{}") for f in frames]),
    "extras as jsonb": (["ALTER TABLE calls ALTER COLUMN extras TYPE jsonb USING extras::jsonb"], None),
    "extras as text": (["ALTER TABLE calls ALTER COLUMN extras TYPE text"], None),
    "no file index": (["DROP INDEX calls_file_idx"], None),
    "no time index": (["DROP INDEX calls_time_account_idx"], None),
    "no primary key": (["ALTER TABLE calls DROP CONSTRAINT calls_pkey"], None),
    "no id sequence": (["ALTER TABLE calls ALTER COLUMN id DROP DEFAULT, ALTER COLUMN id DROP NOT NULL"], None),
    "18-column key": ([], _fallback_keys),
}


def copy_seconds(database_url: str | None, frames: Frames, ddl: list[str]) -> float:
    url, drop = scratch_database(database_url)
    try:
        engine = warehouse(url, CARRIER)
        with engine.begin() as conn:
            for statement in ddl:  # fixed statements of this file, no user text
                conn.exec_driver_sql(statement)
        engine.dispose()
        engine = create_engine(normalise_url(url))
        dbapi = engine.raw_connection().driver_connection
        kinds = column_kinds(dbapi)
        batches = [Batch.prepare(f, CARRIER.code, 1, kinds) for f in frames]
        with dbapi.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
            for month in sorted({p[0] for b in batches for p in b.payloads}):
                cur.execute("SELECT cdrflow_ensure_calls_partition(%s::timestamptz)", (month + "-01 00:00:00+00",))
        dbapi.commit()
        writer = Writer(dbapi, CARRIER.code, 1, kinds)
        started = time.perf_counter()
        for batch in batches:
            writer.write(batch)
        dbapi.commit()
        seconds = time.perf_counter() - started
        assert writer.loaded == sum(len(f) for f in frames)
        dbapi.close()
        engine.dispose()
        return seconds
    finally:
        drop()


def raw_copy_seconds(database_url: str | None, path: Path) -> float:
    import psycopg2

    url, drop = scratch_database(database_url)
    try:
        columns = [c if c != "end" else "end_" for c in ALL_COLUMNS]
        conn = psycopg2.connect(libpq(url))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE raw_master ("
                + ", ".join(f"{c} text" for c in columns)
                + ", PRIMARY KEY (uniqueid, sequence, start))"
            )
            started = time.perf_counter()
            with open(path, "rb") as f:
                cur.copy_expert("COPY raw_master FROM STDIN WITH (FORMAT csv)", f, size=1 << 20)
            seconds = time.perf_counter() - started
        conn.close()
        return seconds
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these variants (and the floor) only")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cdrflow-bench-") as tmp:
        path = generate.write_asterisk_csv_fast(
            Path(tmp) / "Master.csv", args.rows, seed=args.rows, order="time", columns=21
        )
        frames: Frames = []
        with open(path, "rb") as stream:
            for chunk in validated_chunks(stream, "asterisk_csv", ParseOptions()):
                assert not chunk.rejected, chunk.rejected[:3]
                frames.append(chunk.calls.drop(columns=["raw_text"]))
        chosen = {n: v for n, v in VARIANTS.items() if not args.only or n in args.only or n == "calls as it is"}
        variants = {name: (ddl, change(frames) if change else frames) for name, (ddl, change) in chosen.items()}
        print(f"{args.rows:,} rows, 21-column Asterisk Master.csv in time order, medians of {args.repeat} run(s)")
        seconds: dict[str, list[float]] = {name: [] for name in ["raw COPY", *variants]}
        for _ in range(args.repeat):  # alternate, so that drift on the machine hits every figure
            seconds["raw COPY"].append(raw_copy_seconds(args.database_url, path))
            for name, (ddl, data) in variants.items():
                seconds[name].append(copy_seconds(args.database_url, data, ddl))
    floor = statistics.median(seconds["calls as it is"])
    print(f"{'variant':<16} {'seconds':>8} {'/ floor':>8}")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:<16} {median:>8.2f} {median / floor:>8.2f}")


if __name__ == "__main__":
    main()
