"""Run the configured collectors of one kind: what a collector DAG's tasks call.

Kept free of Airflow imports so that the CLI, the demo, the benchmarks and the tests run the
same code the DAGs run.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from sqlalchemy import Engine

from cdrflow.config import carrier_file
from cdrflow.config.carrier_file import Source
from cdrflow.config.vocabulary import SOURCE_KINDS
from cdrflow.intake.rawstore import RawStore
from cdrflow.sources.base import Collected
from cdrflow.warehouse import carriers

log = logging.getLogger("cdrflow.sources")

_MODULES = {kind: f"cdrflow.sources.{kind}" for kind in SOURCE_KINDS}  # one collector module per kind


def planned(engine: Engine, kind: str, configs: list[carrier_file.CarrierConfig] | None = None) -> list[dict]:
    """Sync the carrier file into the warehouse and list the sources of ``kind`` as plain
    dicts (what a DAG hands from task to task): ``{"carrier": code, "source": {...}}``."""
    configs = carrier_file.load() if configs is None else configs
    with engine.begin() as conn:
        carriers.sync(conn, configs)
    return [
        {"carrier": code, "source": source.model_dump(mode="json")}
        for code, source in carrier_file.sources_of_kind(configs, kind)
    ]


def source_from_dict(raw: dict[str, Any]) -> Source:
    return carrier_file.parse_source(raw, "source")


def collect(engine: Engine, store: RawStore, carrier: str, source: Source) -> list[Collected]:
    """Collect from one configured source with its kind's collector."""
    module = importlib.import_module(_MODULES[source.kind])
    found = module.run(engine, store, carrier, source)
    new = sum(c.is_new for c in found)
    log.info(
        "%s %s: %d file(s) seen, %d new, %d duplicate(s), %d skipped",
        source.kind,
        carrier,
        len(found),
        new,
        sum(c.outcome == "duplicate" for c in found),
        sum(c.outcome == "skipped" for c in found),
    )
    return found
