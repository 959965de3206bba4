"""``cdrflow`` commands. The main job (`make demo` runs it with CDRFLOW_DATABASE_URL=embedded)."""

from __future__ import annotations

import argparse

from cdrflow.config import settings


def cmd_demo(args: argparse.Namespace) -> int:
    from cdrflow.dev import demo
    from cdrflow.warehouse import db, migrations

    url = db.resolve_url()
    engine = db.get_engine(url)
    migrations.upgrade(engine, settings.SQL_DIR)
    print(f"warehouse: {db.describe(url)}\nraw store: {settings.raw_store_url()}\n", flush=True)
    print(demo.main(engine, url))
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("demo", help="a day of traffic from three carriers, collected and loaded by the Airflow DAGs")
    p.set_defaults(func=cmd_demo)
