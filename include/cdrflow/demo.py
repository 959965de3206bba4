"""The main job on the embedded defaults: generate a day of carrier files and register them.

Two carriers in two formats (Asterisk Master.csv and Kazoo JSON), plus one file that a carrier
sent twice under another name: the registry records it as a duplicate of the first.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from sqlalchemy import Engine

from cdrflow import carriers, generate
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
    return {"acme": acme, "kazoo": kazoo}


def run(engine: Engine, store: RawStore, workdir: Path) -> list[Registration]:
    with engine.begin() as conn:
        for carrier in DEMO_CARRIERS:
            carriers.upsert(conn, carrier)
    folders = prepare_inbox(workdir / "inbox")
    results: list[Registration] = []
    for carrier, folder in folders.items():
        results += register_folder(engine, store, folder, carrier=carrier, file_source="upload")
    return results


def report(results: list[Registration], seconds: float) -> str:
    table = render(
        ["id", "file", "carrier", "source", "sha1", "bytes", "status"],
        [[r.file_id, r.file_name, r.carrier, r.file_source, r.sha1, r.size,
          f"duplicate of {r.duplicate_of}" if r.is_duplicate else r.status] for r in results])
    originals = sum(not r.is_duplicate for r in results)
    return (f"{table}\n\n{len(results)} files registered in {seconds:.2f}s: {originals} new, "
            f"{len(results) - originals} duplicate(s).")


def main(engine: Engine, store: RawStore, workdir: Path) -> str:
    started = time.perf_counter()
    results = run(engine, store, workdir)
    return report(results, time.perf_counter() - started)
