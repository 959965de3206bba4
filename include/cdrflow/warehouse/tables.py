"""The warehouse tables that code reads through SQLAlchemy Core, declared once.

The migrations in ``sql/`` own the tables; these declarations only let the API and the reports
build statements with bound values instead of SQL text. Every column of each table is declared
with its type in the warehouse, and ``tests/test_tables.py`` compares them with a migrated
database, so a migration that adds, drops or retypes a column fails a test until this module
follows it.

Columns stored as ``json``/``jsonb`` are declared as such; code that wants their text casts them
(``cast(calls.c.extras, Text)``) and parses it itself.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, CHAR, JSONB, UUID

metadata = MetaData()


def _time(name: str) -> Column[object]:
    return Column(name, DateTime(timezone=True))


calls = Table(
    "calls",
    metadata,
    Column("id", BigInteger),
    Column("carrier", Text),
    Column("carrier_call_id", Text),
    _time("start_time"),
    Column("file_id", BigInteger),
    Column("line_number", Integer),
    Column("other_leg_call_id", Text),
    Column("direction", Text),
    _time("answer_time"),
    _time("end_time"),
    Column("duration_seconds", Integer),
    Column("billing_seconds", Integer),
    Column("ringing_seconds", Integer),
    Column("caller_number", Text),
    Column("caller_name", Text),
    Column("callee_number", Text),
    Column("callee_name", Text),
    Column("from_uri", Text),
    Column("to_uri", Text),
    Column("hangup_cause", Text),
    Column("hangup_code", Integer),
    Column("disposition", Text),
    Column("account_id", Text),
    Column("user_id", Text),
    Column("realm", Text),
    Column("authorizing_id", Text),
    Column("connection", Text),
    Column("tags", ARRAY(Text)),
    Column("call_type", Text),
    Column("call_sub_type", Text),
    Column("record_type", Text),
    Column("extras", JSON),
    Column("rate", Numeric(14, 6)),
    Column("cost", Numeric(14, 6)),
    Column("rated_billrun", Text),
    _time("rated_at"),
    _time("loaded_at"),
    Column("record_key", Text),
    Column("call_key", Text),
    Column("quality", JSONB),
    Column("caller_e164", Text),
    Column("callee_e164", Text),
    Column("caller_number_type", Text),
    Column("callee_number_type", Text),
)

cdr_files = Table(
    "cdr_files",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("file_name", Text),
    Column("stored_file_id", Text),
    _time("uploaded_date"),
    Column("file_source", Text),
    Column("carrier", Text),
    Column("file_type", Text),
    Column("billing", Boolean),
    Column("daily", Boolean),
    Column("billrun", Text),
    Column("notes", Text),
    Column("mail_message", Text),
    Column("mail_from", Text),
    Column("mail_to", Text),
    Column("mail_subject", Text),
    Column("status", Text),
    Column("file_path", Text),
    Column("original_hash", CHAR(40)),
    Column("duplicate_of", BigInteger),
    Column("file_size", BigInteger),
    Column("lines", Integer),
    _time("file_processed_stamp"),
    Column("processing_log", Text),
    Column("revision_number", Integer),
    Column("source_uri", Text),
    _time("created_at"),
    _time("updated_at"),
    Column("calls_loaded", Integer),
    Column("calls_rejected", Integer),
    Column("calls_duplicate", Integer),
    Column("parent_id", BigInteger),
    Column("calls_flagged", Integer),
    Column("account_id", Text),
)

carriers = Table(
    "carriers",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text),
    Column("file_type", Text),
    Column("mapping", Text),
    Column("billable", Boolean),
    Column("delivery", Text),
    Column("reject_threshold", Numeric(5, 4)),
    Column("config", JSONB),
    _time("created_at"),
    _time("updated_at"),
    Column("account_id", Text),
)

charges = Table(
    "charges",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("billrun_id", BigInteger),
    Column("call_id", BigInteger),
    Column("carrier", Text),
    Column("record_key", Text),
    _time("start_time"),
    Column("account_id", Text),
    Column("side", Text),
    Column("deck", Text),
    Column("deck_version_id", BigInteger),
    Column("prefix", Text),
    Column("destination", Text),
    Column("call_type", Text),
    Column("call_sub_type", Text),
    Column("billing_seconds", Integer),
    Column("billed_seconds", Integer),
    Column("cost", Numeric),
    Column("currency", Text),
    Column("breakdown", JSON),
    Column("unrated_reason", Text),
    _time("created_at"),
    Column("current", Boolean),
    Column("replaces", BigInteger),
)

rejected_rows = Table(
    "rejected_rows",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("file_id", BigInteger),
    Column("line_number", Integer),
    Column("raw_text", Text),
    Column("raw_bytes", LargeBinary),
    Column("reasons", ARRAY(Text)),
    _time("created_at"),
)

report_requests = Table(
    "report_requests",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("account_id", Text),
    _time("start_time"),
    _time("end_time"),
    Column("call_types", ARRAY(SmallInteger)),
    Column("record_types", ARRAY(SmallInteger)),
    Column("connections", ARRAY(Text)),
    Column("report_name", Text),
    Column("source", Text),
    Column("filters", JSONB),
    Column("gzip", Boolean),
    Column("status", SmallInteger),
    Column("failure_reason", Text),
    Column("artifact_uri", Text),
    Column("bytes", BigInteger),
    Column("sha256", CHAR(64)),
    Column("row_count", BigInteger),
    _time("completed_at"),
    _time("expires_at"),
    Column("claimed_by", Text),
    _time("claimed_at"),
    Column("attempts", Integer),
    Column("created_by", BigInteger),
    _time("created_at"),
    _time("updated_at"),
)
