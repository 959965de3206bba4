"""``cdrflow`` commands. Carriers: the configuration file and single carriers."""

from __future__ import annotations

import argparse
from pathlib import Path

from cdrflow.cli import common
from cdrflow.config.vocabulary import FILE_TYPES, one_of


def cmd_carrier(args: argparse.Namespace) -> int:
    from cdrflow.config import carrier_file
    from cdrflow.warehouse import carriers

    entry = {  # the carrier file's schema checks it: the same rules and messages as `carriers sync`
        "code": args.code,
        "name": args.name,
        "file_type": args.type,
        "mapping": args.mapping,
        "billable": not args.not_billable,
        "delivery": "monthly" if args.monthly else "daily",
        "reject_threshold": args.reject_threshold,
        "timezone": args.timezone,
        "encoding": args.encoding,
        "billable_leg": args.billable_leg,
        "buy_deck": args.buy_deck,
        "dial_plan": {"country": args.country} if args.country else None,
        "checks": dict(_check(c) for c in args.check) if args.check else None,
        "account": args.account,
    }
    config = carrier_file.parse_carrier({k: v for k, v in entry.items() if v is not None})
    with common.engine().begin() as conn:
        carriers.upsert(conn, config.carrier)
    print(f"carrier {args.code} saved")
    return 0


def _check(text: str) -> tuple[str, str]:
    name, sep, severity = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--check {text!r}: write CHECK=SEVERITY, e.g. callee_number=reject")
    return name, severity


def cmd_carriers(args: argparse.Namespace) -> int:
    from cdrflow.config import carrier_file
    from cdrflow.config.text import render
    from cdrflow.warehouse import carriers

    configs = carrier_file.load(args.file)
    if args.action == "sync":
        with common.engine().begin() as conn:
            n = carriers.sync(conn, configs)
        print(f"{n} carrier(s) from {args.file or carrier_file.config_path()} are in the warehouse")
        return 0
    print(
        render(
            ["code", "name", "type", "billable", "delivery", "threshold", "sources"],
            [
                [
                    c.code,
                    c.carrier.name,
                    c.carrier.file_type,
                    c.carrier.billable,
                    c.carrier.delivery,
                    c.carrier.reject_threshold,
                    ", ".join(s.kind for s in c.sources) or "-",
                ]
                for c in configs
            ],
        )
    )
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("carrier", help="add or update a carrier")
    p.add_argument("action", choices=["add"])
    p.add_argument("code")
    p.add_argument("--name")
    p.add_argument("--type", help=f"file type (required): {one_of(FILE_TYPES)}")
    p.add_argument("--mapping", help="mapping file for type 'mapped' (relative to the repository)")
    p.add_argument("--timezone", help="IANA zone of local timestamps in its files (default UTC)")
    p.add_argument("--encoding", help="character set of its files (default utf-8)")
    p.add_argument("--monthly", action="store_true", help="delivers monthly files (default daily)")
    p.add_argument("--not-billable", action="store_true")
    p.add_argument("--reject-threshold", type=float, default=0.05)
    p.add_argument("--billable-leg", help="which leg of a call bills (default: the format's; see README, Calls)")
    p.add_argument("--buy-deck", help="the rate deck this carrier's calls are bought at (see README, Billing runs)")
    p.add_argument("--account", help="the account that sees its files in the CDR Files API and may upload for it")
    p.add_argument("--country", help="dial plan country (ISO code, e.g. RU, DE, US): E.164 numbers from its prefixes")
    p.add_argument(
        "--check", action="append", metavar="CHECK=SEVERITY", help="a check's severity (reject, flag, fail); repeatable"
    )
    p.set_defaults(func=cmd_carrier)
    p = sub.add_parser("carriers", help="the carrier configuration file: sync it into the warehouse, list it")
    p.add_argument("action", choices=["sync", "list"])
    p.add_argument("--file", type=Path, help="default: CDRFLOW_CARRIERS_FILE or include/carriers.yaml")
    p.set_defaults(func=cmd_carriers)
