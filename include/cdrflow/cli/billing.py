"""``cdrflow accounts sync|list`` (who pays what) and ``cdrflow bill run`` (one billing run; ``bill rerate``
is in :mod:`cdrflow.cli.feed`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cdrflow.cli import common
from cdrflow.config import settings


def cmd_accounts(args: argparse.Namespace) -> int:
    from cdrflow.config import account_file
    from cdrflow.config.text import render
    from cdrflow.warehouse import accounts, migrations

    configured = account_file.load(args.file)
    if args.action == "sync":
        engine = common.engine()
        migrations.upgrade(engine, settings.SQL_DIR)
        with engine.begin() as conn:
            n = accounts.sync(conn, configured)
        print(f"{n} account(s) from {args.file or account_file.config_path()} are in the warehouse")
        return 0
    print(
        render(
            ["account", "name", "sell deck", "cycle", "timezone", "currency", "billing group"],
            [
                [a.account_id, a.name, a.sell_deck, a.cycle, a.timezone, a.currency, a.billing_group or "-"]
                for a in configured
            ],
        )
    )
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items())) or "none"


def _money(totals: dict) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in sorted(totals.items())) or "nothing"


def render_billrun(run) -> str:
    period = f"{run.period_start} to {run.period_end} (exclusive)"
    head = f"billrun {run.id}: {run.kind} {period}, scope {run.scope}, version {run.version}, {run.status}"
    if not run.new:
        head = (
            f"nothing new to charge: every billable call of the period already has a current charge.\n"
            f"the last closed run is unchanged: {head}"
        )
    lines = [
        head,
        f"calls charged: {run.calls}",
        f"rated (sell): {run.rated}",
        f"unrated (sell): {sum(run.unrated.values())} ({_counts(run.unrated)})",
        f"totals (sell): {_money(run.totals)}",
    ]
    if run.buy_rated or run.buy_unrated:
        lines += [
            f"rated (buy): {run.buy_rated}; unrated (buy): {sum(run.buy_unrated.values())} ({_counts(run.buy_unrated)})",
            f"totals (buy): {_money(run.buy_totals)}",
        ]
    lines += [
        "where to look (psql):",
        f"  \\set billrun {run.id}",
        "  SELECT * FROM billruns WHERE id = :billrun;",
        "  SELECT * FROM invoice_lines WHERE billrun_id = :billrun ORDER BY account_id, destination;",
        "  SELECT * FROM charges WHERE billrun_id = :billrun AND unrated_reason IS NOT NULL;  -- unrated calls",
    ]
    return "\n".join(lines)


def cmd_bill(args: argparse.Namespace) -> int:
    from cdrflow.billing.billrun import run_billrun
    from cdrflow.warehouse import migrations

    engine = common.engine()
    migrations.upgrade(engine, settings.SQL_DIR)
    run = run_billrun(engine, args.kind, args.period, account=args.account)
    print(render_billrun(run))
    from cdrflow.billing.rerate import below_cost
    from cdrflow.cli.feed import render_below_cost

    with engine.connect() as conn:
        print("\n".join(render_below_cost(below_cost(conn, run.id))))
    print(render_artifacts(engine, run.id))
    return 0


def render_artifacts(engine, billrun_id: int) -> str:
    """Write (or find) the billrun's invoice files and summary; say where they are."""
    from cdrflow.billing.artifacts import write_artifacts

    written = write_artifacts(engine, billrun_id)
    summary, invoices = written[0], written[1:]
    folder = summary.uri.rsplit("/", 1)[0]
    return "\n".join(
        [f"invoice files: {len(invoices)} (one CSV per account) and the summary, in {folder}/"]
        + [f"  {a.uri.rsplit('/', 1)[1]:<32} {a.bytes:>10,} bytes  sha1 {a.sha1}" for a in written]
    )


def add_parsers(sub) -> None:
    from cdrflow.cli.api import add_account_parsers

    p = sub.add_parser("accounts", help="accounts: sync the account file, list it; their API credentials")
    actions = p.add_subparsers(dest="action", required=True)
    for name, what in (("sync", "load the account file into the warehouse"), ("list", "show the account file")):
        a = actions.add_parser(name, help=what)
        a.add_argument("--file", type=Path, help="default: CDRFLOW_ACCOUNTS_FILE or include/accounts.yaml")
        a.set_defaults(func=cmd_accounts)
    add_account_parsers(actions)
    p = sub.add_parser("bill", help="billing runs: rate a period's calls (each call charged once)")
    actions = p.add_subparsers(dest="action", required=True)
    r = actions.add_parser("run", help="charge the period's billable calls that have no current charge")
    r.add_argument("--kind", choices=["daily", "monthly"], required=True)
    r.add_argument("--period", required=True, help="a day (2026-11-01) for daily, a month (2026-11) for monthly")
    r.add_argument("--account", help="one account (default: every account of the cycle, and calls of no account)")
    r.set_defaults(func=cmd_bill)
    from cdrflow.cli.feed import add_rerate_parser

    add_rerate_parser(actions)
