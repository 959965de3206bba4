"""``cdrflow reports build [--once]`` and ``cdrflow reports housekeeping``: what the report DAGs
do, without Airflow (the demo, the tests, a machine without a scheduler)."""

from __future__ import annotations

import argparse

from cdrflow.cli import common
from cdrflow.config import settings


def _engine():
    from cdrflow.warehouse import migrations

    engine = common.engine()
    migrations.upgrade(engine, settings.SQL_DIR)
    return engine


def cmd_build(args: argparse.Namespace) -> int:
    """Build pending report requests until none is left (``--once``: one). Exit 1 when one failed."""
    from cdrflow.reports.build import build_pending

    outcomes = build_pending(_engine(), args.worker, once=args.once)
    for o in outcomes:
        print(o.describe())
    if not outcomes:
        print("no pending report request")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def cmd_housekeeping(args: argparse.Namespace) -> int:
    """Delete expired reports' files and mark their requests Expired (4)."""
    from cdrflow.reports import housekeeping

    done = housekeeping.run(_engine())
    print(done.describe())
    return 1 if done.problems else 0


def add_parsers(sub) -> None:
    p = sub.add_parser("reports", help="CDR report requests (seed 001): build pending ones, expire old ones")
    actions = p.add_subparsers(dest="action", required=True)
    b = actions.add_parser("build", help="build pending report requests into the artifact store")
    b.add_argument("--once", action="store_true", help="build at most one request")
    b.add_argument("--worker", help="this builder's name in the claims (default: host:pid)")
    b.set_defaults(func=cmd_build)
    h = actions.add_parser("housekeeping", help="delete expired reports' files; their requests become Expired")
    h.set_defaults(func=cmd_housekeeping)
