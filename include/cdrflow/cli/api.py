"""``cdrflow api serve`` (the seed APIs alone under uvicorn) and the API credentials of accounts:
``cdrflow accounts token|key|password|credentials|revoke``."""

from __future__ import annotations

import argparse
import getpass
import sys

from cdrflow.cli import common
from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError
from cdrflow.config.text import render


def _engine():
    from cdrflow.warehouse import migrations

    engine = common.engine()
    migrations.upgrade(engine, settings.SQL_DIR)
    return engine


def _owner(args: argparse.Namespace) -> str | None:
    if args.operator == bool(args.account):
        raise CdrflowError("name an ACCOUNT, or give --operator for a credential that sees every account")
    return None if args.operator else args.account


def cmd_secret(args: argparse.Namespace) -> int:
    """A new token or Kazoo api key: printed once, only its hash is kept."""
    from cdrflow.warehouse import credentials

    owner = _owner(args)
    kind = {"token": "token", "key": "api_key"}[args.action]
    with _engine().begin() as conn:
        cred_id, secret = credentials.create(conn, kind, owner, label=args.label)
    who = f"account {owner}" if owner else "an operator (every account)"
    print(
        f"{kind.replace('_', ' ')} {cred_id} for {who} (shown once; revoke: cdrflow accounts revoke {cred_id}):",
        file=sys.stderr,
    )
    print(secret)
    return 0


def cmd_password(args: argparse.Namespace) -> int:
    """The billing feed's password for an account (seed 004: login = the account number)."""
    from cdrflow.warehouse import credentials

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"billing feed password for {args.account}: ")
    with _engine().begin() as conn:
        cred_id, _ = credentials.create(conn, "feed_password", args.account, label=args.label, secret=password)
    print(f"billing feed password {cred_id} set for account {args.account} (login={args.account})")
    return 0


def cmd_credentials(args: argparse.Namespace) -> int:
    from cdrflow.warehouse import credentials

    with _engine().begin() as conn:
        rows = credentials.listing(conn, account_id=args.account)
    print(
        render(
            ["id", "account", "role", "kind", "label", "created", "expires", "revoked"],
            [
                [
                    c.id,
                    c.account_id or "-",
                    c.role,
                    c.kind,
                    c.label or "-",
                    f"{c.created_at:%Y-%m-%d %H:%M}",
                    f"{c.expires_at:%Y-%m-%d %H:%M}" if c.expires_at else "-",
                    f"{c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "-",
                ]
                for c in rows
            ],
        )
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from cdrflow.warehouse import credentials

    with _engine().begin() as conn:
        for cred_id in args.ids:
            c = credentials.revoke(conn, cred_id)
            print(f"revoked {c.kind} {c.id} of {c.account_id or 'operator'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cdrflow.warehouse import db

    db.resolve_url()  # a missing warehouse is a one-line error now, not at the first request
    print(f"cdrflow seed APIs on http://{args.host}:{args.port}/cdr (OpenAPI: /cdr/openapi.json)", file=sys.stderr)
    uvicorn.run("cdrflow.api.app:standalone_app", factory=True, host=args.host, port=args.port, workers=args.workers)
    return 0


def add_account_parsers(actions) -> None:
    """The credential actions of ``cdrflow accounts``."""
    for name, what in (("token", "an API token"), ("key", "a Kazoo api key (exchanged by PUT /v1/api_auth)")):
        p = actions.add_parser(name, help=f"create {what} for ACCOUNT (or --operator); printed once")
        p.add_argument("account", nargs="?")
        p.add_argument("--operator", action="store_true", help="sees every account's records")
        p.add_argument("--label", help="a note: who holds it")
        p.set_defaults(func=cmd_secret)
    p = actions.add_parser("password", help="set the billing feed password of ACCOUNT (seed 004 login/password)")
    p.add_argument("account")
    p.add_argument("--password-stdin", action="store_true", help="read it from the first line of stdin")
    p.add_argument("--label")
    p.set_defaults(func=cmd_password)
    p = actions.add_parser("credentials", help="list API credentials (never their secrets)")
    p.add_argument("account", nargs="?")
    p.set_defaults(func=cmd_credentials)
    p = actions.add_parser("revoke", help="revoke credentials by id (refused from the next request on)")
    p.add_argument("ids", nargs="+", type=int)
    p.set_defaults(func=cmd_revoke)


def add_parsers(sub) -> None:
    p = sub.add_parser("api", help="the seed APIs over HTTP")
    actions = p.add_subparsers(dest="action", required=True)
    s = actions.add_parser("serve", help="serve them alone under uvicorn, at /cdr (as in Airflow)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(func=cmd_serve)
