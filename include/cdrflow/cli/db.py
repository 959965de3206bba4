"""``cdrflow`` commands. The warehouse: migrations, where it is, the embedded server, and its
data dictionary (Markdown from the catalog's comments)."""

from __future__ import annotations

import argparse
import sys

from cdrflow.config import settings
from cdrflow.config.errors import MigrationError


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
    if args.action == "dictionary":
        return _dictionary(engine)
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


def _dictionary(engine) -> int:
    """Print the data dictionary; refused on a warehouse that lacks migrations of ``sql/``, whose
    dictionary would describe an older warehouse than the code's."""
    from cdrflow.warehouse import dictionary, migrations

    recorded = migrations.applied(engine)
    pending = [m.path.name for m in migrations.discover(settings.SQL_DIR) if m.version not in recorded]
    if pending:
        names = ", ".join(pending) if len(pending) <= 3 else f"{pending[0]} .. {pending[-1]}"
        raise MigrationError(
            f"the warehouse lacks {len(pending)} migration(s) ({names}): "
            "run `cdrflow db upgrade` first, the dictionary describes the migrated warehouse"
        )
    with engine.connect() as conn:
        sys.stdout.write(dictionary.markdown(conn))
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "db", help="the warehouse: upgrade, status, url, stop (embedded server), dictionary (Markdown, to stdout)"
    )
    p.add_argument("action", choices=["upgrade", "status", "url", "stop", "dictionary"])
    p.set_defaults(func=cmd_db)
