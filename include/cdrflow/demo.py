"""The main job on the embedded defaults: generate a day of carrier files, register and load them.

Two carriers in two formats (Asterisk Master.csv and Kazoo JSON), one file that a carrier sent
twice under another name (the registry records it as a duplicate of the first and it is never
loaded), and one file with a few broken rows (they go to the quarantine with their reasons).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from sqlalchemy import Engine, text

from cdrflow import carriers, generate
from cdrflow.loader import LoadResult
from cdrflow.processing import process_file
from cdrflow.rawstore import RawStore
from cdrflow.registry import Registration
from cdrflow.sources.folder import register_folder
from cdrflow.tables import render

DEMO_CARRIERS = [
    carriers.Carrier(code="acme", name="ACME Telecom (Asterisk)", file_type="asterisk_csv"),
    carriers.Carrier(code="kazoo", name="Kazoo Cloud PBX", file_type="kazoo_json", delivery="daily"),
]


def prepare_inbox(inbox: Path) -> dict[str, Path]:
    """Write the demo files, one folder per carrier; returns carrier -> folder."""
    day = generate.demo_day()
    acme, kazoo = inbox / "acme", inbox / "kazoo"
    for folder in (acme, kazoo):
        folder.mkdir(parents=True, exist_ok=True)
    first = generate.write_asterisk_csv(acme / f"Master-{day:%Y%m%d}-a.csv", 2_000, seed=1, day=day)
    generate.write_asterisk_csv(acme / f"Master-{day:%Y%m%d}-b.csv", 1_500, seed=2, day=day)
    shutil.copyfile(first, acme / f"resent-Master-{day:%Y%m%d}-a.csv")  # same bytes, new name
    generate.write_kazoo_json(kazoo / f"cdrs-{day:%Y-%m-%d}.json", 1_000, seed=3, day=day)
    late = generate.asterisk_bytes(400, seed=4, day=day).splitlines(keepends=True)
    late[10] = late[10].replace(b'"ANSWERED"', b'"ANSWERED","extra column"', 1)  # too many columns
    late[20] = late[20][:40] + b"\n"  # cut short
    (acme / f"Master-{day:%Y%m%d}-c.csv").write_bytes(b"".join(late))
    return {"acme": acme, "kazoo": kazoo}


def run(engine: Engine, store: RawStore, workdir: Path) -> list[tuple[Registration, LoadResult | None]]:
    with engine.begin() as conn:
        for carrier in DEMO_CARRIERS:
            carriers.upsert(conn, carrier)
    folders = prepare_inbox(workdir / "inbox")
    results = []
    for carrier, folder in folders.items():
        for reg in register_folder(engine, store, folder, carrier=carrier, file_source="upload"):
            loaded = None if reg.is_duplicate or _done(engine, reg.file_id) else process_file(engine, store, reg.file_id)
            results.append((reg, loaded))
    return results


def _done(engine: Engine, file_id: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT status <> 'received' FROM cdr_files WHERE id = :i"), {"i": file_id}).scalar()


def report(results: list[tuple[Registration, LoadResult | None]], seconds: float) -> str:
    table = render(
        ["id", "file", "carrier", "sha1", "bytes", "status", "calls", "rejected", "duplicates"],
        [[r.file_id, r.file_name, r.carrier, r.sha1[:12], r.size,
          f"duplicate of {r.duplicate_of}" if r.is_duplicate else (lr.status if lr else "already processed"),
          lr.loaded if lr else "", lr.rejected if lr else "", lr.duplicates if lr else ""]
         for r, lr in results])
    originals = sum(not r.is_duplicate for r, _ in results)
    loaded = [lr for _, lr in results if lr]
    return (f"{table}\n\n{len(results)} files in {seconds:.1f}s: {originals} new, "
            f"{len(results) - originals} duplicate(s); {sum(lr.loaded for lr in loaded)} calls loaded, "
            f"{sum(lr.rejected for lr in loaded)} rows quarantined "
            f"(see `cdrflow file ID` and the rejected_rows table).")


def main(engine: Engine, store: RawStore, workdir: Path) -> str:
    started = time.perf_counter()
    results = run(engine, store, workdir)
    return report(results, time.perf_counter() - started)
