"""``cdrflow`` commands. The warehouse: migrations, where it is, the embedded server."""

from __future__ import annotations

import argparse

from cdrflow.config import settings


def cmd_db(args: argparse.Namespace) -> int:
    from cdrflow.warehouse import db, embedded, migrations

    if args.action == "stop":
        stopped = embedded.stop_server(settings.state_dir())
        print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
        return 0
    url = db.resolve_url()
    if args.action == "url":
        print(url)
        return 0
    engine = db.get_engine(url)
    if args.action == "upgrade":
        done = migrations.upgrade(engine, settings.SQL_DIR)
        for m in done:
            print(f"applied {m.path.name}")
        print(
            f"warehouse {db.describe(url)} is up to date "
            f"({len(done)} migration(s) applied now, {len(migrations.discover(settings.SQL_DIR))} in all)"
        )
        return 0
    recorded = migrations.applied(engine)
    for m in migrations.discover(settings.SQL_DIR):
        print(f"{m.path.name:40} {'applied' if m.version in recorded else 'PENDING'}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("db", help="the warehouse: upgrade, status, url, stop (embedded server)")
    p.add_argument("action", choices=["upgrade", "status", "url", "stop"])
    p.set_defaults(func=cmd_db)
