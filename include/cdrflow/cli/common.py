"""What every command needs: the warehouse engine and the raw store, resolved on first use."""

from __future__ import annotations

from sqlalchemy import Engine

from cdrflow.config import settings
from cdrflow.intake.rawstore import RawStore


def engine() -> Engine:
    from cdrflow.warehouse import db

    return db.get_engine()


def store() -> RawStore:
    return RawStore(settings.raw_store_url())
