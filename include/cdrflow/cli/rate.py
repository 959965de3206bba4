"""``cdrflow rate quote``: what a call to a number would cost on a deck, and why.

    cdrflow rate quote --deck NAME --to NUMBER --seconds N [--at TIMESTAMP] [--json]

The deck version in force at ``--at`` (default now) rates the call with the engine the billruns
use (``billing/rating.py``); the output is the matched prefix, destination, billed seconds, cost
and the breakdown per rate slot, or one JSON object with ``--json``. On a deck with time-of-day
periods ``--at`` is also when the call starts: the call is split where its period changes, and
each piece shows its local start time and period (``any time`` for the prefix's any-time rate).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from cdrflow.billing.rating import quote
from cdrflow.cli import common
from cdrflow.config.errors import CdrflowError


def _at(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CdrflowError(f"--at {value!r} is not a timestamp (2026-11-01T12:00:00Z or 2026-11-01)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def render(result: dict) -> str:
    """The quote for people: one line per fact, then one per rate slot."""
    lines = [
        f"deck:            {result['deck']} (version from {result['effective_from']}, {result['currency']})",
        f"number:          {result['number']}",
        f"prefix:          {result['prefix']}  {result['destination']}"
        + (f"  (call type {result['call_type']})" if result["call_type"] else ""),
        *([f"starts:          {result['at']} (deck time)"] if "at" in result else []),
        f"billing seconds: {result['billing_seconds']}",
        f"billed seconds:  {result['billed_seconds']}"
        + ("  (minimum applied)" if result["minimum_applied"] else "")
        + ("  (free: under the minimum)" if result["free_under_minimum"] else ""),
        f"connect fee:     {result['connect_fee']}",
    ]
    for s in result["slots"]:
        when = [s["local"]] if "local" in s else []
        when += [s["period"] or "any time"] if "period" in s else []
        lines.append(
            f"  from {s['start']:>5} s{' (' + ', '.join(when) + ')' if when else ''}: {s['seconds']:>6} s at"
            f" {s['price']} per {s['unit']} s in {s['increment']} s steps = {s['amount']}"
        )
    lines.append(
        f"cost:            {result['cost']} {result['currency']}"
        + ("  (max cost)" if result["max_cost_applied"] else "")
    )
    return "\n".join(lines)


def cmd_quote(args: argparse.Namespace) -> int:
    from cdrflow.billing import decks

    if args.seconds < 0:
        raise CdrflowError("--seconds must be 0 or more")
    at = _at(args.at)
    with common.engine().connect() as conn:
        version = decks.load_version(conn, args.deck, at)
        if version is None:
            if decks.get_deck(conn, args.deck) is None:
                raise CdrflowError(f"unknown deck {args.deck!r} (cdrflow rates import FILE --deck NAME creates one)")
            raise CdrflowError(f"deck {args.deck!r} has no version in force at {at.isoformat()}")
    result = quote(version, args.to, args.seconds, at)
    if "unrated" in result:
        raise CdrflowError(f"{args.to}: {result['unrated']} in deck {args.deck!r}")
    print(json.dumps(result) if args.json else render(result))
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("rate", help="rating: quote what a call costs")
    actions = p.add_subparsers(dest="rate_command", required=True)
    q = actions.add_parser("quote", help="the cost of a call to a number on a deck, with its breakdown")
    q.add_argument("--deck", required=True, help="deck name")
    q.add_argument("--to", required=True, help="the number called: E.164 (+4930...) or digits")
    q.add_argument("--seconds", required=True, type=int, help="billing seconds (billsec)")
    q.add_argument(
        "--at", help="when the call starts (ISO 8601, UTC unless it says; default now): the version, and the periods"
    )
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_quote)
