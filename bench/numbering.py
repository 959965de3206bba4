"""Benchmark: what normalising the numbers (E.164 and number type) costs, per million calls.

(Not ``bench/numbers.py``: the other benchmarks put this folder first on ``sys.path``, where
that name would shadow the standard library's ``numbers``, which numpy imports.)

The file: a generated Asterisk Master.csv of ``--rows`` calls (default 1,000,000; 18 columns,
one day in time order, as a PBX appends it) of a Russian carrier whose callers and callees are
drawn from a pool of ``--distinct`` numbers (default 300,000) written as such a carrier's
switches write them: national mobiles and landlines with the trunk prefix 8 (89161234567),
with the country code (+79161234567, 79161234567), international calls with 810 or 00,
extensions, short codes (112, 01), SIP URIs and ``anonymous``. Popularity is skewed (a few
numbers are dialled all day, most a few times): the two columns hold some 250,000 distinct
values, and a chunk of 100,000 calls about 100,000.

Baseline, measured in the same run: the parse of the same file by
``cdrflow.loading.chunks.parsed_chunks`` with numbering switched off. Then the same parse
with numbering, for a carrier with the dial plan ``{country: RU, international_prefixes:
['810', '00']}`` and for one without a dial plan. Each figure is the median of ``--repeat``
runs, alternating; the numbers' cache is emptied before each run (a cold process), and the
time spent inside :func:`cdrflow.formats.numbering.normalise` is reported on its own.

Usage: python bench/numbering.py [--rows 1000000] [--distinct 300000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from cdrflow.dev import generate
from cdrflow.formats import numbering
from cdrflow.formats.base import ParseOptions
from cdrflow.loading import chunks

PLAN = numbering.DialPlan("RU", international_prefixes=("810", "00"))


def number_pool(distinct: int, rng: np.random.Generator) -> np.ndarray:
    """``distinct`` raw numbers in the forms a Russian carrier's CDRs hold them."""
    kinds = rng.choice(10, distinct, p=[0.30, 0.15, 0.10, 0.12, 0.08, 0.05, 0.12, 0.03, 0.03, 0.02])
    mobile = rng.integers(900_000_0000, 999_999_9999, distinct).astype(str)
    landline = np.char.add(
        rng.choice(["495", "499", "812", "343", "383"], distinct),
        rng.integers(1_000_000, 9_999_999, distinct).astype(str),
    )
    foreign = np.char.add(
        rng.choice(["44", "49", "1", "33", "86", "380"], distinct), rng.integers(10**8, 10**10, distinct).astype(str)
    )
    extension = rng.integers(100, 10_000, distinct).astype(str)  # a PBX of up to 9,900 extensions
    forms = [
        np.char.add("8", mobile),  # 89161234567
        np.char.add("+7", mobile),
        np.char.add("7", mobile),  # the country code without '+'
        np.char.add("8", landline),  # 84951234567
        np.char.add("810", foreign),
        np.char.add("00", foreign),
        extension,
        np.char.add(np.char.add("sip:", extension), "@pbx.example.ru"),
        rng.choice(["112", "01", "02", "03", "100", "*72", "s", "h", "ch1", "client1"], distinct),
        rng.choice(["anonymous", "Restricted", "sip:anonymous@anonymous.invalid", "", "garbage!"], distinct),
    ]
    return np.choose(kinds, forms)


def write_file(path: Path, rows: int, distinct: int, seed: int = 10) -> int:
    """The generator's time-ordered Master.csv with ``src`` and ``dst`` taken from the pool;
    returns how many distinct values the two columns hold."""
    generate.write_asterisk_csv_fast(path, rows, seed=seed, order="time")
    rng = np.random.default_rng(seed)
    pool = number_pool(distinct, rng)
    # skewed: a few numbers dialled all day (Zipf), the rest of the pool evenly, a few times each
    popularity = np.where(
        rng.random(2 * rows) < 0.4, rng.zipf(1.3, 2 * rows) % distinct, rng.integers(0, distinct, 2 * rows)
    )
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(generate_columns())),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in generate_columns()}),
    )
    table = table.set_column(1, "src", pa.array(pool[popularity[:rows]])).set_column(
        2, "dst", pa.array(pool[popularity[rows:]])
    )
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return len(np.unique(pool[popularity]))


def generate_columns():
    from cdrflow.formats.asterisk_csv import ALL_COLUMNS

    return ALL_COLUMNS[:18]


def parse(path: Path, plan: numbering.DialPlan | None, numbers: bool) -> tuple[float, float, int]:
    """Seconds to parse ``path`` (all chunks), seconds inside normalise, calls."""
    numbering._caches.clear()
    spent = [0.0]

    def timed(frame, dial_plan):
        t = time.perf_counter()
        out = numbering.normalise(frame, dial_plan)
        spent[0] += time.perf_counter() - t
        return out

    chunks.normalise = timed if numbers else (lambda frame, dial_plan: frame)  # type: ignore[assignment]
    calls = 0
    started = time.perf_counter()
    with open(path, "rb") as stream:
        for chunk in chunks.parsed_chunks(stream, "asterisk_csv", ParseOptions(dial_plan=plan)):
            calls += len(chunk.calls)
    elapsed = time.perf_counter() - started
    chunks.normalise = numbering.normalise
    return elapsed, spent[0], calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cdrflow-bench-numbers-") as tmp:
        path = Path(tmp) / "Master.csv"
        distinct = write_file(path, args.rows, args.distinct)
        sides = {"parse, no numbering (baseline)": (None, False), "parse + numbers, dial plan RU": (PLAN, True)}
        sides["parse + numbers, no dial plan"] = (None, True)
        times: dict[str, list[tuple[float, float, int]]] = {name: [] for name in sides}
        for _ in range(args.repeat):
            for name, (plan, numbers) in sides.items():
                times[name].append(parse(path, plan, numbers))
        size = path.stat().st_size
    base = statistics.median(t[0] for t in times["parse, no numbering (baseline)"])
    print(
        f"{args.rows:,} calls ({size / 1e6:.0f} MB), {distinct:,} distinct caller/callee values "
        f"(pool of {args.distinct:,}); median of {args.repeat}; cache {numbering.CACHE_SIZE:,} values per plan"
    )
    print(f"{'side':34} {'parse':>8} {'ratio':>6} {'numbering':>10} {'numbering per 1M calls':>23}")
    for name, runs in times.items():
        total = statistics.median(t[0] for t in runs)
        inner = statistics.median(t[1] for t in runs)
        per_million = f"{inner * 1e6 / runs[0][2]:.2f} s" if inner else "-"
        print(f"{name:34} {total:7.2f}s {total / base:6.2f} {inner:9.2f}s {per_million:>23}")


if __name__ == "__main__":
    main()
