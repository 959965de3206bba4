"""The warehouse tables the reports read and write, as SQLAlchemy Core objects.

Only the columns cdrflow.reports uses are declared (the migrations in ``sql/`` own the tables):
``report_requests`` (migration 018), and ``calls``, ``rejected_rows``, ``cdr_files`` and
``carriers`` that a report selects from. Statements are built from these, with bound values.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, SmallInteger, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData()

report_requests = Table(
    "report_requests",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("account_id", Text),
    Column("start_time", DateTime(timezone=True)),
    Column("end_time", DateTime(timezone=True)),
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
    Column("sha256", Text),
    Column("row_count", BigInteger),
    Column("completed_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("claimed_by", Text),
    Column("claimed_at", DateTime(timezone=True)),
    Column("attempts", Integer),
    Column("created_by", BigInteger),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)

calls = Table(
    "calls",
    metadata,
    Column("carrier", Text),
    Column("record_key", Text),
    Column("carrier_call_id", Text),
    Column("other_leg_call_id", Text),
    Column("start_time", DateTime(timezone=True)),
    Column("answer_time", DateTime(timezone=True)),
    Column("end_time", DateTime(timezone=True)),
    Column("file_id", BigInteger),
    Column("line_number", Integer),
    Column("direction", Text),
    Column("duration_seconds", Integer),
    Column("billing_seconds", Integer),
    Column("caller_number", Text),
    Column("caller_e164", Text),
    Column("caller_name", Text),
    Column("callee_number", Text),
    Column("callee_e164", Text),
    Column("callee_name", Text),
    Column("hangup_cause", Text),
    Column("hangup_code", Integer),
    Column("disposition", Text),
    Column("account_id", Text),
    Column("user_id", Text),
    Column("connection", Text),
    Column("tags", ARRAY(Text)),
    Column("call_type", Text),
    Column("call_sub_type", Text),
    Column("record_type", Text),
)

rejected_rows = Table(
    "rejected_rows",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("file_id", BigInteger),
    Column("line_number", Integer),
    Column("raw_text", Text),
    Column("reasons", ARRAY(Text)),
    Column("created_at", DateTime(timezone=True)),
)

cdr_files = Table(
    "cdr_files",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("carrier", Text),
    Column("account_id", Text),
)

carriers = Table(
    "carriers",
    metadata,
    Column("code", Text, primary_key=True),
    Column("account_id", Text),
)
