"""Seed 000's CDR file object: the 23 fields in the seed's order, and how a ``cdr_files`` row
becomes one (``api-contract.md`` §A1.2).

The seed calls every field "Text" or "Preset Value" and gives no values for its presets, so the
choices below are ours, made once here and shown in the OpenAPI descriptions and the README:

- numbers the seed types as Text (``id``, ``fileSize``, ``lines``, ``revisionNumber``) are JSON
  **strings of digits** (``"id": "42"``), the literal reading; ``idAfter`` is still compared
  as a number, never as text;
- ``fileSource`` keeps the seed's three literals; how cdrflow collected the file is in the extra
  field ``sourceKind``;
- ``billing`` is ``Yes``/``No``, ``daily`` (labelled "Frequency") is ``Daily``/``Monthly``;
- ``status`` is one of six stable words mapped from the registry's statuses;
- times are ISO 8601 in UTC with ``Z``, microseconds when the stamp has them (so a stamp read
  back into ``createdSince``/``updatedSince`` names the same instant);
- extra fields after the 23: ``sourceKind``, ``duplicateOf``, ``created``, ``updated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# how the registry's file_source shows in the seed's three literals
FILE_SOURCE = {
    "upload": "Upload",
    "api": "Upload",
    "bucket": "Upload",
    "email": "Email",
    "sftp": "FTP",
    "ftp": "FTP",
}

# the registry's statuses (cdrflow.intake.status.FileStatus) as the API shows them
STATUS = {
    "received": "Received",
    "processing": "Processing",
    "loaded": "Processed",
    "failed": "Failed",
    "rejected": "Rejected",
    "duplicate": "Duplicate",
}

SEED_FIELDS = (
    "fileName",
    "storedFileID",
    "uploadedDate",
    "fileSource",
    "carrier",
    "fileType",
    "billing",
    "daily",
    "billrun",
    "notes",
    "mailMessage",
    "mailFrom",
    "mailTo",
    "mailSubject",
    "status",
    "filePath",
    "originalHash",
    "fileSize",
    "lines",
    "fileProcessedStamp",
    "processingLog",
    "id",
    "revisionNumber",
)

_DIGITS = "a string of decimal digits (the seed types it as Text)"
_TIME = "ISO 8601, UTC, with Z (e.g. 2024-01-31T12:00:00.123456Z)"


class CdrFile(BaseModel):
    """One CDR file of the registry: the seed's 23 fields in its order, then cdrflow's extras."""

    fileName: str = Field(description="The name of the uploaded CDR file (made safe: its last path component)")
    storedFileID: str = Field(description="Content address of the bytes in the raw store: sha1/ab/cd/<sha1>")
    uploadedDate: str = Field(description=f"When the file was received; {_TIME}")
    fileSource: Literal["Upload", "Email", "FTP"] = Field(
        description="Upload (HTTP or command-line upload, upload bucket, API), Email (mailbox) or FTP "
        "(SFTP, FTP and FTPS collection); the exact way is in sourceKind"
    )
    carrier: str = Field(description="Carrier code")
    fileType: str | None = Field(description="File type (format) that decides how the file is parsed")
    billing: Literal["Yes", "No"] = Field(description="Yes: the file holds billable calls")
    daily: Literal["Daily", "Monthly"] = Field(description="Frequency: a daily or a monthly file")
    billrun: str | None = Field(description="Id of the billing run the file belongs to")
    notes: str | None = Field(description="Free text")
    mailMessage: str | None = Field(description="Message-ID of the email the file came in")
    mailFrom: str | None = Field(description="From address of that email")
    mailTo: str | None = Field(description="To address(es) of that email")
    mailSubject: str | None = Field(description="Subject of that email")
    status: Literal["Received", "Processing", "Processed", "Failed", "Rejected", "Duplicate"] = Field(
        description="Received (registered, waiting), Processing, Processed (its calls are loaded), Failed "
        "(processing failed; it can be re-run), Rejected (not a usable file: wrong format, corrupt or "
        "unsafe archive), Duplicate (the same bytes, by SHA1, as file duplicateOf; never loaded)"
    )
    filePath: str = Field(description="URL of the stored bytes")
    originalHash: str = Field(description="SHA1 of the bytes, 40 lower-case hex digits")
    fileSize: str = Field(description=f"Size in bytes, {_DIGITS}")
    lines: str | None = Field(description=f"Lines processed, {_DIGITS}; null until processed")
    fileProcessedStamp: str | None = Field(description=f"When processing finished; {_TIME}; null until then")
    processingLog: str = Field(description="Timestamped lines of what happened to the file (append-only)")
    id: str = Field(description=f"CDR file id, {_DIGITS}; ids grow with each file (idAfter compares numbers)")
    revisionNumber: str = Field(description=f"1 at registration, one more on every change; {_DIGITS}")
    sourceKind: Literal["upload", "email", "sftp", "ftp", "bucket", "api"] = Field(
        description="cdrflow's own name of the way the file came (fileSource groups these)"
    )
    duplicateOf: str | None = Field(description="For a Duplicate: the id of the first file with these bytes")
    created: str = Field(description=f"When the record was created (createdSince compares it); {_TIME}")
    updated: str = Field(description=f"When the record last changed (updatedSince compares it); {_TIME}")


def iso(value: datetime | None) -> str | None:
    """A timestamp as the API writes it: UTC, ``Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _digits(value: int | None) -> str | None:
    return None if value is None else str(value)


def file_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A ``cdr_files`` row (its column names) as the API's object, keys in the seed's order."""
    return {
        "fileName": row["file_name"],
        "storedFileID": row["stored_file_id"],
        "uploadedDate": iso(row["uploaded_date"]),
        "fileSource": FILE_SOURCE[row["file_source"]],
        "carrier": row["carrier"],
        "fileType": row["file_type"],
        "billing": "Yes" if row["billing"] else "No",
        "daily": "Daily" if row["daily"] else "Monthly",
        "billrun": row["billrun"],
        "notes": row["notes"],
        "mailMessage": row["mail_message"],
        "mailFrom": row["mail_from"],
        "mailTo": row["mail_to"],
        "mailSubject": row["mail_subject"],
        "status": STATUS[row["status"]],
        "filePath": row["file_path"],
        "originalHash": row["original_hash"],
        "fileSize": _digits(row["file_size"]),
        "lines": _digits(row["lines"]),
        "fileProcessedStamp": iso(row["file_processed_stamp"]),
        "processingLog": row["processing_log"],
        "id": _digits(row["id"]),
        "revisionNumber": _digits(row["revision_number"]),
        "sourceKind": row["file_source"],
        "duplicateOf": _digits(row["duplicate_of"]),
        "created": iso(row["created_at"]),
        "updated": iso(row["updated_at"]),
    }
