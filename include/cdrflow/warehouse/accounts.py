"""Rows of the ``accounts`` table: who pays what (``include/accounts.yaml``, synced by
``cdrflow accounts sync``). The row type, :class:`~cdrflow.config.account_file.Account`, is
defined with the file that describes it."""

from __future__ import annotations

from sqlalchemy import Connection, text

from cdrflow.config.account_file import Account

__all__ = ["Account", "all_accounts", "get", "sync", "upsert"]

_COLUMNS = ("account_id", "name", "sell_deck", "cycle", "timezone", "currency", "billing_group")
_SELECT = "SELECT account_id, name, sell_deck, cycle, timezone, currency, billing_group FROM accounts"

_UPSERT = text("""
INSERT INTO accounts (account_id, name, sell_deck, cycle, timezone, currency, billing_group)
VALUES (:account_id, :name, :sell_deck, :cycle, :timezone, :currency, :billing_group)
ON CONFLICT (account_id) DO UPDATE SET
    name = EXCLUDED.name, sell_deck = EXCLUDED.sell_deck, cycle = EXCLUDED.cycle,
    timezone = EXCLUDED.timezone, currency = EXCLUDED.currency,
    billing_group = EXCLUDED.billing_group, updated_at = now()
WHERE (accounts.name, accounts.sell_deck, accounts.cycle, accounts.timezone, accounts.currency,
       accounts.billing_group)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.sell_deck, EXCLUDED.cycle, EXCLUDED.timezone,
       EXCLUDED.currency, EXCLUDED.billing_group)
""")


def upsert(conn: Connection, account: Account) -> None:
    """Insert the account or update it to match ``account``."""
    conn.execute(_UPSERT, dict(account.__dict__))


def sync(conn: Connection, accounts: list[Account]) -> int:
    """Insert or update every configured account (inside the caller's transaction). Accounts in
    the table but not in the file are left alone: their charges still point at them."""
    for a in accounts:
        upsert(conn, a)
    return len(accounts)


def all_accounts(conn: Connection) -> list[Account]:
    rows = conn.execute(text(_SELECT + " ORDER BY account_id")).mappings()
    return [Account(**r) for r in rows]


def get(conn: Connection, account_id: str) -> Account | None:
    row = conn.execute(text(_SELECT + " WHERE account_id = :a"), {"a": account_id}).mappings().first()
    return Account(**row) if row else None
