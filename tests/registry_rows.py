"""What the collector tests read back from the warehouse: ``cdr_files`` rows and their stored bytes."""

from __future__ import annotations

from sqlalchemy import Engine, text

from cdrflow.intake.rawstore import RawStore


def rows(engine: Engine) -> list[dict]:
    """Every ``cdr_files`` row, in registration order, with the columns the tests look at."""
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text(
                    "SELECT id, file_name, file_source, status, duplicate_of, file_size, stored_file_id, source_uri, "
                    "mail_message, mail_from, mail_to, mail_subject FROM cdr_files ORDER BY id"
                )
            ).mappings()
        ]


def stored(store: RawStore, row: dict) -> bytes:
    """The bytes the raw store holds for a ``cdr_files`` row."""
    with store.open(row["stored_file_id"]) as f:
        return f.read()
