"""``cdrflow feed`` (seed 004's billing feed as CSV) and ``cdrflow bill rerate``."""

from __future__ import annotations

import argparse
import sys

from cdrflow.cli import common
from cdrflow.config import settings


def cmd_feed(args: argparse.Namespace) -> int:
    from cdrflow.billing import feed
    from cdrflow.warehouse import migrations

    if args.from_id < 0 or (args.limit is not None and args.limit < 1):
        print("error: --from-id must be 0 or more and --limit 1 or more", file=sys.stderr)
        return 1
    engine = common.engine()
    migrations.upgrade(engine, settings.SQL_DIR)
    with engine.begin() as conn:  # a server-side cursor: the records stream to stdout
        feed.write_csv(feed.records(conn, args.from_id, args.limit, feed.FeedFilter(account=args.account)), sys.stdout)
    return 0


def render_below_cost(rows: list[dict]) -> list[str]:
    if not rows:
        return ["destinations sold below cost: none"]
    lines = [f"destinations sold below cost: {len(rows)}"]
    for r in rows:
        lines.append(
            f"  {r['destination'] or '-'} ({r['call_type'] or '-'}): {r['calls']} call(s), sold {r['sell_total']}, "
            f"bought {r['buy_total']}, margin {r['margin']} {r['currency']} ({r['calls_below_cost']} below cost)"
        )
    return lines


def cmd_rerate(args: argparse.Namespace) -> int:
    from cdrflow.billing.rerate import rerate
    from cdrflow.cli.billing import render_billrun
    from cdrflow.config.text import render
    from cdrflow.warehouse import migrations

    engine = common.engine()
    migrations.upgrade(engine, settings.SQL_DIR)
    done = rerate(
        engine, args.kind, args.period, account=args.account, carrier=args.carrier, deck_version=args.deck_version
    )
    print(f"rerating: {done.replaced} charge(s) replaced (kept, no longer current)")
    print(render_billrun(done.billrun))
    print("change per account (sell):")
    print(
        render(
            ["account", "currency", "old total", "new total", "difference"],
            [[c.account_id or "-", c.currency, c.old, c.new, c.difference] for c in done.changes],
        )
    )
    print("\n".join(render_below_cost(done.below_cost)))
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("feed", help="the billing feed (seed 004) as CSV: records from an id on, ids ascending")
    p.add_argument("--from-id", type=int, default=0, help="first id to print (inclusive, like the feed's fromid)")
    p.add_argument("--limit", type=int, help="at most this many records")
    p.add_argument("--account", help="only this account's records (the feed's login)")
    p.set_defaults(func=cmd_feed)


def add_rerate_parser(actions) -> None:
    """``bill rerate``, under the ``bill`` command of :mod:`cdrflow.cli.billing`."""
    r = actions.add_parser("rerate", help="re-rate a closed period as a new billrun version (the old one kept)")
    r.add_argument("--kind", choices=["daily", "monthly"], required=True)
    r.add_argument("--period", required=True, help="a day (2026-11-01) for daily, a month (2026-11) for monthly")
    who = r.add_mutually_exclusive_group()
    who.add_argument("--account", help="only this account's calls")
    who.add_argument("--carrier", help="only this carrier's calls")
    r.add_argument(
        "--deck-version",
        type=int,
        help="rate with this deck version (rate_deck_versions.id) instead of the one in force",
    )
    r.set_defaults(func=cmd_rerate)
