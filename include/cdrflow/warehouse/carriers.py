"""Rows of the ``carriers`` table: who sends files, in which format, billed or not.

The row type, :class:`~cdrflow.config.carrier_file.Carrier`, is defined with the carrier file
that describes it (and re-exported here for the code that reads and writes the table).
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from cdrflow.config.carrier_file import Carrier, CarrierConfig
from cdrflow.config.errors import UnknownCarrier

__all__ = ["Carrier", "get", "sync", "upsert"]


_UPSERT = text("""
INSERT INTO carriers (code, name, file_type, mapping, billable, delivery, reject_threshold, config,
                      account_id)
VALUES (:code, :name, :file_type, :mapping, :billable, :delivery, :reject_threshold,
        CAST(:config AS jsonb), :account_id)
ON CONFLICT (code) DO UPDATE SET
    name = EXCLUDED.name, file_type = EXCLUDED.file_type, mapping = EXCLUDED.mapping,
    billable = EXCLUDED.billable, delivery = EXCLUDED.delivery,
    reject_threshold = EXCLUDED.reject_threshold, config = EXCLUDED.config,
    account_id = EXCLUDED.account_id
WHERE (carriers.name, carriers.file_type, carriers.mapping, carriers.billable, carriers.delivery,
       carriers.reject_threshold, carriers.config, carriers.account_id)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.file_type, EXCLUDED.mapping, EXCLUDED.billable,
       EXCLUDED.delivery, EXCLUDED.reject_threshold, EXCLUDED.config, EXCLUDED.account_id)
""")


def upsert(conn: Connection, carrier: Carrier) -> None:
    """Insert the carrier or update it to match ``carrier`` (its ``account_id`` too: the carrier
    file is the whole truth about a carrier, so a carrier without ``account:`` is operators' only)."""
    params = {**carrier.__dict__, "config": json.dumps(carrier.config)}
    conn.execute(_UPSERT, params)


def sync(conn: Connection, configs: list[CarrierConfig]) -> int:
    """Insert or update every configured carrier in the ``carriers`` table (inside the caller's
    transaction). Carriers that are in the table but not in the file are left alone: their files
    and calls still point at them."""
    for c in configs:
        upsert(conn, c.carrier)
    return len(configs)


def get(conn: Connection, code: str) -> Carrier:
    row = (
        conn.execute(
            text(
                "SELECT code, name, file_type, mapping, billable, delivery, reject_threshold, config, "
                "account_id FROM carriers WHERE code = :code"
            ),
            {"code": code},
        )
        .mappings()
        .first()
    )
    if row is None:
        known = conn.execute(text("SELECT string_agg(code, ', ' ORDER BY code) FROM carriers")).scalar()
        raise UnknownCarrier(f"unknown carrier {code!r}; known carriers: {known or 'none yet'}")
    return Carrier(**{**row, "reject_threshold": float(row["reject_threshold"])})
