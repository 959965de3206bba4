"""A file's Great Expectations Data Docs page on the cdrflow page (issue 14, analysts).

``<base>/files/{id}/data-docs`` (``/cdr/operator/files/{id}/data-docs`` in Airflow) answers the
page GX renders for the file's validation result (:mod:`cdrflow.validation.data_docs`), from what
loading stored in ``file_validations`` (sql/026); it is rendered on request, about 0.1 s, not
while loading. A file that was never validated (a duplicate, a file rejected before
validation, one loaded before migration 026) answers 404 with a page that says so. Same access
as the rest of the cdrflow page (:mod:`cdrflow.api.ui_access`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from cdrflow.api.errors import not_found
from cdrflow.validation import data_docs

_STORED = text("SELECT validated_at, success, result FROM file_validations WHERE file_id = :id")
_SUMMARY = text("""
SELECT v.validated_at, v.success,
       (v.result->'statistics'->>'unsuccessful_expectations')::int AS failed_checks,
       (v.result->'statistics'->>'evaluated_expectations')::int AS checks
FROM file_validations v WHERE v.file_id = :id
""")
_FILE = text("SELECT status FROM cdr_files WHERE id = :id")


@dataclass(frozen=True)
class Stored:
    """What the file's page says about its validation result (None: none stored)."""

    validated_at: datetime
    success: bool
    failed_checks: int
    checks: int


def summary(conn: Connection, file_id: int) -> Stored | None:
    row = conn.execute(_SUMMARY, {"id": file_id}).first()
    return None if row is None else Stored(row.validated_at, row.success, row.failed_checks, row.checks)


def page_html(conn: Connection, file_id: int, *, home: str) -> str:
    """GX's Data Docs page of the file's stored validation result; 404 (an error page that
    says why) for an unknown file or one without a stored result."""
    row = conn.execute(_STORED, {"id": file_id}).first()
    if row is None:
        status = conn.execute(_FILE, {"id": file_id}).scalar_one_or_none()
        if status is None:
            raise not_found(f"no file has id {file_id}")
        raise not_found(
            f"file {file_id} ({status}) has no validation result stored: it was never validated "
            "(a duplicate, a file rejected before its rows were checked, or one loaded before "
            "validation results were kept)"
        )
    return data_docs.render(row.result, home=home)
