"""``cdrflow`` commands. Carriers: the configuration file and single carriers."""

from __future__ import annotations

import argparse
from pathlib import Path

from cdrflow.cli import common


def cmd_carrier(args: argparse.Namespace) -> int:
    from cdrflow.warehouse import carriers

    carrier = carriers.Carrier(
        code=args.code,
        name=args.name or args.code,
        file_type=args.type,
        mapping=args.mapping,
        billable=not args.not_billable,
        delivery="monthly" if args.monthly else "daily",
        reject_threshold=args.reject_threshold,
    )
    with common.engine().begin() as conn:
        carriers.upsert(conn, carrier)
    print(f"carrier {args.code} saved")
    return 0


def cmd_carriers(args: argparse.Namespace) -> int:
    from cdrflow.config import carrier_file
    from cdrflow.config.text import render

    configs = carrier_file.load(args.file)
    if args.action == "sync":
        with common.engine().begin() as conn:
            n = carrier_file.sync(conn, configs)
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
    p.add_argument("--type", help="file type code, e.g. asterisk_csv")
    p.add_argument("--mapping", help="mapping file for type 'mapped'")
    p.add_argument("--monthly", action="store_true", help="delivers monthly files (default daily)")
    p.add_argument("--not-billable", action="store_true")
    p.add_argument("--reject-threshold", type=float, default=0.05)
    p.set_defaults(func=cmd_carrier)
    p = sub.add_parser("carriers", help="the carrier configuration file: sync it into the warehouse, list it")
    p.add_argument("action", choices=["sync", "list"])
    p.add_argument("--file", type=Path, help="default: CDRFLOW_CARRIERS_FILE or include/carriers.yaml")
    p.set_defaults(func=cmd_carriers)
