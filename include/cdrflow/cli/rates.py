"""``cdrflow rates``: import rate decks (a new version each time) and list them."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from cdrflow.cli import common
from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError

FORMATS = ("cdrflow", "cgrates", "cdrtool")


def _read(args: argparse.Namespace, effective_from: date, existing):
    from cdrflow.billing.deck_files import cdrflow_csv, cdrtool, cgrates
    from cdrflow.billing.model import Deck

    path = Path(args.file)
    if not path.exists():
        raise CdrflowError(f"{path}: no such file or folder")
    if args.format == "cgrates":
        return cgrates.read(
            path, effective_from, currency=args.currency or "USD", kind=args.kind or "sell", only=args.deck
        )
    if not args.deck:
        raise CdrflowError(f"--deck NAME is required for --format {args.format}")
    deck = existing or Deck(name=args.deck)
    zone = args.timezone or deck.timezone
    deck = replace(deck, currency=args.currency or deck.currency, kind=args.kind or deck.kind, timezone=zone)
    if args.format == "cdrtool":
        return cdrtool.read(path, deck, effective_from)
    if path.is_dir():
        raise CdrflowError(f"{path} is a folder: a cdrflow deck is one CSV file (folders: --format cgrates or cdrtool)")
    return cdrflow_csv.read(path, deck, effective_from)


def cmd_import(args: argparse.Namespace) -> int:
    from cdrflow.billing import decks
    from cdrflow.billing.deck_files import DeckRefused
    from cdrflow.warehouse import migrations

    if args.timezone:
        _zone(args.timezone)
    engine = common.engine()
    migrations.upgrade(engine, settings.SQL_DIR)
    effective_from = args.effective_from or datetime.now(UTC).date()
    with engine.connect() as conn:
        existing = decks.get_deck(conn, args.deck) if args.deck and args.format != "cgrates" else None
    try:
        imported = _read(args, effective_from, existing)
    except DeckRefused as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return 1
    source = f"{Path(args.file).name} ({args.format})"
    with engine.begin() as conn:  # every deck of a folder, or none
        stored = []
        for version in imported.versions:
            current = decks.get_deck(conn, version.deck.name)
            if current is not None and args.format == "cgrates":  # an existing deck's settings stand
                deck = replace(
                    version.deck,
                    currency=args.currency or current.currency,
                    kind=args.kind or current.kind,
                    timezone=args.timezone or current.timezone,
                )
                version = replace(version, deck=deck)
            elif args.timezone and args.format == "cgrates":
                version = replace(version, deck=replace(version.deck, timezone=args.timezone))
            before = decks.latest(conn, version.deck.name)
            previous = decks.load_version_id(conn, before.id) if before else None
            after = decks.version_info(conn, decks.store(conn, version, source))
            stored.append((version, after, before, previous))
    for version, after, before, previous in stored:
        against = f"against version {before.version} (from {before.effective_from})" if before else "a new deck"
        periods = f", {len(version.periods)} periods ({version.deck.timezone})" if version.periods else ""
        print(
            f"deck {version.deck.name} ({version.deck.kind}, {version.deck.currency}): version {after.version}, "
            f"{len(version.rates)} rates{periods}, in force from {version.effective_from}; {against}:"
        )
        print(decks.diff(previous, version).render())
    for note in imported.notes:
        print(f"note: {note}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from cdrflow.billing import decks
    from cdrflow.config.text import render

    with common.engine().connect() as conn:
        if conn.execute(text("SELECT to_regclass('rate_decks')")).scalar() is None:
            print("no rate decks (run `cdrflow db upgrade`, then `cdrflow rates import`)")
            return 0
        known = {d.name: d for d in decks.decks(conn)}
        if args.deck and args.deck not in known:
            raise CdrflowError(f"no rate deck {args.deck}")
        rows = decks.versions(conn, args.deck)
    if not rows:
        print("no rate decks")
        return 0
    print(
        render(
            ["deck", "kind", "currency", "version", "effective from", "rates", "source", "imported"],
            [
                [
                    v.deck,
                    known[v.deck].kind,
                    known[v.deck].currency,
                    v.version,
                    v.effective_from,
                    v.rates,
                    v.source,
                    v.imported_at.strftime("%Y-%m-%d %H:%M"),
                ]
                for v in rows
            ],
        )
    )
    return 0


def _zone(value: str) -> str:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, KeyError):
        raise CdrflowError(f"--timezone {value!r} is not an IANA time zone (Europe/Amsterdam, UTC)") from None
    return value


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def add_parsers(sub) -> None:
    p = sub.add_parser("rates", help="rate decks: import a deck file as a new version, list decks and versions")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("import", help="import FILE as the next version of a deck and show what changed")
    q.add_argument("file", help="the deck file (cdrflow), tariff plan folder (cgrates), folder or file (cdrtool)")
    q.add_argument("--deck", help="deck name (required but for cgrates, where each rating plan is a deck)")
    q.add_argument("--format", choices=FORMATS, default="cdrflow")
    q.add_argument("--effective-from", type=_date, help="first day in force (YYYY-MM-DD; default today, UTC)")
    q.add_argument("--currency", help="ISO 4217 code for a new deck (default USD; an existing deck's otherwise)")
    q.add_argument("--kind", choices=["sell", "buy"], help="for a new deck (default sell)")
    q.add_argument(
        "--timezone",
        help="IANA zone of a new deck's periods and dates (default UTC; CDRTool: its customer's Timezone)",
    )
    q.set_defaults(func=cmd_import)
    q = actions.add_parser("list", help="decks and their versions")
    q.add_argument("--deck")
    q.set_defaults(func=cmd_list)
