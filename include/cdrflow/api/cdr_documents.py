"""A leg of ``calls`` as the Kazoo CDR document of seeds 002 and 003, and as a CSV row.

Two views, as in Kazoo: the **summary** a list returns (seed 002's eleven list fields, seed 003's
default properties, the caller and callee, the billing summary) and the **detail** of
``/cdrs/{cdr_id}`` (seed 002's 34 detail fields and seed 003's conditional, custom-channel-var,
billing and fax properties). Rules (``api-contract.md`` §A3.5):

- Default properties are always present: ``call_id``, ``call_direction``, ``duration_seconds``,
  ``hangup_cause``, ``timestamp`` (plus ``id`` and ``imported``). A conditional property the leg
  does not have is **absent**, never ``null``.
- ``timestamp`` is the leg's end in Gregorian seconds (an integer; see
  :mod:`cdrflow.api.cdr_query` for which column), ``*_seconds`` are integers, ``hangup_code`` is
  Kazoo's ``"sip:NNN"``, ``channel_authorized``, ``fax_success``, ``fax_ecm_used`` and
  ``fax_t38`` are booleans, ``digits_dialed`` is ``"none"`` when no digits are known (seed 002).
- Columns of ``calls`` give the fields they hold; the rest comes from ``calls.extras``, where the
  loader kept every source field without a column (for Kazoo JSON files: the whole document minus
  the mapped fields, ``custom_channel_vars`` included). The detail of a leg loaded from a Kazoo
  JSON file carries every field of its document (CouchDB's ``_id``/``_rev`` and Kazoo's private
  ``pvt_*`` excepted); legs of other formats carry the Kazoo fields their extras happen to hold.
- ``custom_channel_vars``: the source's own, plus ``account_id``, ``owner_id`` (the leg's user,
  ``calls.user_id``), ``realm`` and ``authorizing_id`` from their columns, and ``inception`` and
  ``bridge_id`` mirrored from the top level (seed 002 lists them there). ``media_server`` (003)
  and ``handling_server_name`` (002) name the same node: each is filled from the other.
- Billing properties at the top level are cdrflow's rating, the leg's current sell charge:
  ``rate``, ``base_cost``, ``surcharge`` (the connect fee), ``cost`` as decimal strings,
  ``rate_minimum``, ``rate_increment`` as integers, ``rate_name`` (the matched rate's
  destination) and ``currency``; absent while the leg is unrated. Billing values a Kazoo source
  put in its custom channel vars (Kazoo's own rating, in its units) stay there, unchanged.
- ``imported`` is true for legs of files uploaded by people (seed 002's "tagged as imported").

CSV: one column per field of :data:`CSV_COLUMNS`, custom channel vars as dotted names
(``custom_channel_vars.owner_id``), absent fields empty, booleans ``true``/``false``, text cells
neutralised against formula injection (:mod:`cdrflow.api.csv_safety`). Its ``timestamp`` is the
same leg end as in JSON (Kazoo's own CSV writes the start there; ``timestamp - duration_seconds``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cdrflow.api.cdr_ids import cdr_id
from cdrflow.api.csv_safety import neutralise
from cdrflow.api.kazoo import to_gregorian

Row = Mapping[Any, Any]  # a row of cdr_query (RowMapping), by column name
CCV = "custom_channel_vars"
KAZOO_FILE_TYPE = "kazoo_json"

# Fields a leg's extras may hold under their Kazoo name, copied to the detail of any format.
EXTRA_FIELDS = (
    "from",
    "to",
    "request",
    "presence_id",
    "inception",
    "media_server",
    "handling_server_name",
    "node",
    "local_sdp",
    "remote_sdp",
    "user_agent",
    "other_leg_caller_id_name",
    "other_leg_caller_id_number",
    "other_leg_destination_number",
    "other_leg_direction",
    "bridge_id",
    "channel_authorized",
    "cid_type",
    "digits_dialed",
    "app_name",
    "app_version",
    "event_name",
    "event_category",
    "server_id",
    "interaction_id",
    "reseller_billing",
    "reseller_id",
    "account_billing",
    "fax_transfer_rate",
    "fax_bad_rows",
    "fax_total_pages",
    "fax_transferred_pages",
    "fax_ecm_used",
    "fax_result_text",
    "fax_result_code",
    "fax_success",
    "fax_t38",
)
BOOLEANS = ("channel_authorized", "fax_success", "fax_ecm_used", "fax_t38")
CCV_FIELDS = (
    "account_id",
    "owner_id",
    "authorizing_id",
    "authorizing_type",
    "realm",
    "username",
    "endpoint_id",
    "tenant_id",
    "access_group",
    "inception",
    "bridge_id",
    "ecallmgr_node",
    "fetch_id",
    "resource_id",
)
BILLING_FIELDS = ("rate", "rate_name", "base_cost", "surcharge", "rate_minimum", "rate_increment", "cost", "currency")
SUMMARY_FIELDS = (
    "id",
    "call_id",
    "timestamp",
    "call_direction",
    "duration_seconds",
    "billing_seconds",
    "ringing_seconds",
    "hangup_cause",
    "digits_dialed",
    "to_uri",
    "from_uri",
    "caller_id_number",
    "caller_id_name",
    "callee_id_number",
    "callee_id_name",
    "other_leg_call_id",
    *BILLING_FIELDS,
    "imported",
)
_COLUMN_FIELDS = (  # Kazoo name <- calls column, for the conditional properties
    ("billing_seconds", "billing_seconds"),
    ("ringing_seconds", "ringing_seconds"),
    ("caller_id_number", "caller_number"),
    ("caller_id_name", "caller_name"),
    ("callee_id_number", "callee_number"),
    ("callee_id_name", "callee_name"),
    ("other_leg_call_id", "other_leg_call_id"),
    ("from_uri", "from_uri"),
    ("to_uri", "to_uri"),
    ("disposition", "disposition"),
)
CSV_COLUMNS = (
    *SUMMARY_FIELDS[:-1],
    "hangup_code",
    "disposition",
    *(f for f in EXTRA_FIELDS if f not in ("digits_dialed",)),
    "imported",
    *(f"{CCV}.{name}" for name in CCV_FIELDS),
)


def extras_of(row: Row) -> dict[str, Any]:
    raw = row["extras"]
    if not raw:
        return {}
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else {}


def _duration(row: Row) -> int:
    if row["duration_seconds"] is not None:
        return int(row["duration_seconds"])
    if row["end_time"] is not None:
        return max(0, int((row["end_time"] - row["start_time"]).total_seconds()))
    return 0


def _boolean(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def billing(row: Row) -> dict[str, Any]:
    """The billing properties of the leg's current sell charge; empty while it is unrated."""
    cost = row["charge_cost"]
    if cost is None:
        return {}
    breakdown = json.loads(row["charge_breakdown"]) if row["charge_breakdown"] else {}
    out: dict[str, Any] = {}
    for name, source in (("rate", "rate"), ("base_cost", "base_cost"), ("surcharge", "connect_fee")):
        if breakdown.get(source) is not None:
            out[name] = str(breakdown[source])
    for name in ("rate_minimum", "rate_increment"):
        if isinstance(breakdown.get(name), int):
            out[name] = breakdown[name]
    rate_name = row["charge_destination"] or breakdown.get("destination")
    if rate_name:
        out["rate_name"] = rate_name
    out["cost"] = format(Decimal(cost), "f")
    if row["charge_currency"]:
        out["currency"] = row["charge_currency"]
    return out


def summary(row: Row, extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """The list view of a leg."""
    extras = extras_of(row) if extras is None else extras
    doc: dict[str, Any] = {
        "id": cdr_id(row["carrier"], row["record_key"], row["start_time"]),
        "call_id": row["carrier_call_id"],
        "timestamp": to_gregorian(row["moment"]),
        "call_direction": row["direction"] or "",
        "duration_seconds": _duration(row),
        "hangup_cause": row["hangup_cause"] or "",
        "digits_dialed": extras.get("digits_dialed") or "none",
    }
    for field, col in _COLUMN_FIELDS:
        if row[col] is not None and field in SUMMARY_FIELDS:
            doc[field] = row[col]
    doc.update(billing(row))
    doc["imported"] = bool(row["imported"])
    return doc


def detail(row: Row) -> dict[str, Any]:
    """The detail view of a leg (``/cdrs/{cdr_id}``)."""
    extras = extras_of(row)
    doc = summary(row, extras)
    if row["file_type"] == KAZOO_FILE_TYPE:  # the whole source document
        source = {k: v for k, v in extras.items() if k != CCV and not k.startswith(("_", "pvt_"))}
    else:
        source = {k: extras[k] for k in EXTRA_FIELDS if k in extras}
    for key, value in source.items():
        doc.setdefault(key, value)
    for field, col in _COLUMN_FIELDS:
        if row[col] is not None:
            doc[field] = row[col]
    if row["hangup_code"] is not None:
        doc["hangup_code"] = f"sip:{row['hangup_code']}"
    for name in BOOLEANS:
        if name in doc:
            doc[name] = _boolean(doc[name])
    for one, other in (("media_server", "handling_server_name"), ("handling_server_name", "media_server")):
        if doc.get(one) not in (None, "") and other not in doc:
            doc[other] = doc[one]
    ccv = _channel_vars(row, extras, doc)
    if ccv:
        doc[CCV] = ccv
    return {k: v for k, v in doc.items() if v is not None}


def _channel_vars(row: Row, extras: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    found = extras.get(CCV)
    ccv: dict[str, Any] = dict(found) if isinstance(found, dict) else {}
    for name, col in (("account_id", "account_id"), ("owner_id", "user_id"), ("realm", "realm")):
        if row[col] is not None:
            ccv[name] = row[col]
    if row["authorizing_id"] is not None:
        ccv["authorizing_id"] = row["authorizing_id"]
    for name in ("inception", "bridge_id"):
        if name in doc and name not in ccv:
            ccv[name] = doc[name]
        elif name in ccv and name not in doc:
            doc[name] = ccv[name]
    return {k: v for k, v in ccv.items() if v is not None}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return neutralise(json.dumps(value, separators=(",", ":")))
    if isinstance(value, str):
        return neutralise(value)
    return value


def csv_row(doc: dict[str, Any]) -> list[Any]:
    """A detail document as the cells of :data:`CSV_COLUMNS`, safe to open in a spreadsheet."""
    ccv = doc.get(CCV) or {}
    cells = []
    for name in CSV_COLUMNS:
        if name.startswith(CCV + "."):
            cells.append(_cell(ccv.get(name[len(CCV) + 1 :])))
        else:
            cells.append(_cell(doc.get(name)))
    return cells
