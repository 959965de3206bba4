"""Telnyx-style CDR report CSV (seed 001 vocabulary), with a header row.

Header names are compared lower-cased with spaces and dashes read as ``_``; for each field
the first of these names that the file has is used:

| field | accepted header names |
|---|---|
| carrier_call_id | call_leg_id, call_session_id, call_id, id, uuid |
| start_time / answer_time / end_time | start_time, started_at / answer_time, answered_at / end_time, ended_at (ISO 8601) |
| duration_seconds / billing_seconds | duration, duration_sec, call_sec / billed_sec, billsec, billing_seconds |
| direction | direction, call_direction, call_type (inbound/outbound or 1 = inbound, 2 = outbound) |
| record_type | record_type, status (complete/incomplete/errors or 1/2/3) |
| connection | connection_id, connection_name, connection |
| caller_number / callee_number | cli, from, ani / cld, to, dnis |
| tags | tags (separated by , ; or pipe) |
| hangup_cause | hangup_cause, hangup_reason |

Cost, rate, currency and every other column stay in extras. A header without a call id or a
start time column is refused with the names it looked for.
"""

from __future__ import annotations

from cdrflow.formats.mapped import BuiltinMappingParser


class TelnyxCsvParser(BuiltinMappingParser):
    name = "telnyx_csv"
    mapping = {
        "description": "Telnyx CDR report CSV",
        "header": True,
        "normalise_header": True,
        "columns": {
            "carrier_call_id": ["call_leg_id", "call_session_id", "call_id", "id", "uuid"],
            "start_time": ["start_time", "started_at"],
            "answer_time": ["answer_time", "answered_at"],
            "end_time": ["end_time", "ended_at"],
            "duration_seconds": ["duration", "duration_sec", "call_sec"],
            "billing_seconds": ["billed_sec", "billsec", "billing_seconds"],
            "direction": ["direction", "call_direction", "call_type"],
            "record_type": ["record_type", "status"],
            "connection": ["connection_id", "connection_name", "connection"],
            "caller_number": ["cli", "from", "ani"],
            "callee_number": ["cld", "to", "dnis"],
            "tags": ["tags"],
            "hangup_cause": ["hangup_cause", "hangup_reason"],
        },
        "optional": [
            "answer_time",
            "end_time",
            "duration_seconds",
            "billing_seconds",
            "direction",
            "record_type",
            "connection",
            "caller_number",
            "callee_number",
            "tags",
            "hangup_cause",
        ],
        "timestamp_format": "iso8601",
        "value_maps": {
            "direction": {
                "1": "inbound",
                "2": "outbound",
                "Inbound": "inbound",
                "Outbound": "outbound",
                "incoming": "inbound",
                "outgoing": "outbound",
            },
            "record_type": {
                "1": "complete",
                "2": "incomplete",
                "3": "error",
                "Complete": "complete",
                "Incomplete": "incomplete",
                "Errors": "error",
                "errors": "error",
                "Error": "error",
            },
        },
    }
