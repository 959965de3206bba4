"""Legs of ``calls`` for the CDRs API tests (inserted as the loader leaves them) and small helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from cdrflow.api.kazoo import to_gregorian

BASE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
G = to_gregorian(BASE)
DAY = 86400

INSERT = text("""
INSERT INTO calls (carrier, carrier_call_id, record_key, start_time, end_time, file_id, direction,
                   duration_seconds, billing_seconds, ringing_seconds, caller_number, caller_name,
                   callee_number, callee_name, from_uri, to_uri, hangup_cause, hangup_code, disposition,
                   account_id, user_id, extras)
VALUES (:carrier, :carrier_call_id, :record_key, :start_time, :end_time, :file_id, :direction,
        :duration_seconds, :billing_seconds, :ringing_seconds, :caller_number, :caller_name,
        :callee_number, :callee_name, :from_uri, :to_uri, :hangup_cause, :hangup_code, :disposition,
        :account_id, :user_id, CAST(:extras AS json))
""")


def add_leg(engine, call_id: str, end: datetime, *, seconds: int = 60, account: str | None = "acctA", **fields):
    """A leg ending at ``end`` (``seconds`` long), inserted as the loader would leave it."""
    start = end - timedelta(seconds=seconds)
    row = {
        "carrier": "acme",
        "carrier_call_id": call_id,
        "record_key": call_id,
        "start_time": start,
        "end_time": end,
        "file_id": 0,
        "direction": "outbound",
        "duration_seconds": seconds,
        "billing_seconds": max(seconds - 5, 0),
        "ringing_seconds": 5,
        "caller_number": "+15551230001",
        "caller_name": "Alice",
        "callee_number": "+442071230001",
        "callee_name": None,
        "from_uri": "sip:+15551230001@pbx.example.com",
        "to_uri": "sip:+442071230001@carrier.example.net",
        "hangup_cause": "NORMAL_CLEARING",
        "hangup_code": 200,
        "disposition": "ANSWERED",
        "account_id": account,
        "user_id": "user1",
        "extras": "{}",
        **fields,
    }
    with engine.begin() as conn:
        conn.execute(text("SELECT cdrflow_ensure_calls_partition(:ts)"), {"ts": start})
        conn.execute(INSERT, row)
    return row


@pytest.fixture
def legs(api_engine):
    """Removes what tests add beside calls (charges, billruns) afterwards."""
    yield api_engine
    with api_engine.begin() as conn:
        conn.execute(text("TRUNCATE billing_feed, invoice_lines, charges, billruns RESTART IDENTITY CASCADE"))


def range_params(start: int = G - DAY, end: int = G + DAY) -> dict[str, int]:
    return {"created_from": start, "created_to": end}


def kazoo_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["error"] == str(status), body
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body
