"""Kazoo / 2600Hz CDR JSON (seeds 002 and 003).

Accepted shapes:
- a JSON array of CDR documents (streamed: one record at a time, however long the array);
- JSON lines, one document per line (streamed);
- an API envelope ``{"data": [...], ...}`` or a single document (a stored CouchDB CDR, a
  CHANNEL_DESTROY webhook payload): read whole, as API pages and payloads are small.

``line_number`` is the physical line for JSON lines and the record's position (1-based) in an
array, an envelope or a single document.

Times: ``timestamp`` (Gregorian seconds, number or string) is when the record was written, at
hangup: it becomes ``end_time``; ``start_time`` is ``timestamp - duration_seconds`` (the rule
Kazoo's own CSV export uses); ``answer_time`` is ``end_time - billing_seconds`` for answered
legs. Without ``timestamp`` the document's ``pvt_created`` serves.

Mapping: call_id, other_leg_call_id, call_direction -> direction, duration/billing/ringing
seconds, caller/callee id number and name, from_uri/to_uri (else from/to), hangup_cause,
hangup_code (``sip:487`` -> 487), disposition; ``custom_channel_vars`` (or the flattened
webhook keys) account_id, owner_id (else username) -> user_id, realm, authorizing_id.
``record_type`` is ``complete`` when billing_seconds > 0. Record identity (``record_key``) is
``call_id``: every Kazoo leg is a channel with its own Call-ID (the stored document's ``_id`` is
``YYYYMM-`` + it), so an A and a B leg are two records, tied by ``other_leg_call_id``.
Call (``call_key``): ``interaction_id`` (Kazoo's id of the whole interaction, shared by every leg;
else the custom channel var ``call_interaction_id``) when the record has one, else its own
``call_id``; legs without it are joined when loaded, through ``other_leg_call_id``
(:mod:`cdrflow.loading.legs`). ``interaction_id`` also stays in extras. Every other field (billing
properties rate, base_cost, rate_minimum, rate_increment, surcharge, rate_name, reseller_*,
fax_* properties, SDP, user agent, the remaining custom channel vars, ...) stays in extras
with its JSON value.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, BinaryIO

import pandas as pd

from cdrflow.formats.arrow_text import EARLIEST, LATEST
from cdrflow.formats.base import (
    GREGORIAN_OFFSET,
    Chunk,
    FormatError,
    ParseOptions,
    RowProblem,
    conform,
    looks_binary,
)

_CCV = "custom_channel_vars"
_TOP = {
    "call_id",
    "other_leg_call_id",
    "call_direction",
    "duration_seconds",
    "billing_seconds",
    "ringing_seconds",
    "caller_id_number",
    "caller_id_name",
    "callee_id_number",
    "callee_id_name",
    "from_uri",
    "to_uri",
    "hangup_cause",
    "hangup_code",
    "disposition",
    "timestamp",
}
_CCV_MAPPED = {"account_id", "owner_id", "username", "realm", "authorizing_id"}
_READ = 1 << 20
_FIRST, _LAST = ((moment - datetime(1970, 1, 1)) // timedelta(seconds=1) for moment in (EARLIEST, LATEST))


class KazooJsonParser:
    name = "kazoo_json"
    other_legs = True  # A and B legs name each other (cdrflow.loading.legs joins them)

    def parse(self, stream: BinaryIO, options: ParseOptions) -> Iterator[Chunk]:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
        if looks_binary(head):
            raise FormatError("binary data, not Kazoo CDR JSON")
        rows: list[dict] = []
        problems: list[RowProblem] = []
        seen = False
        for number, raw, record in _records(text):
            seen = True
            row, problem = _canonical(number, raw, record)
            if problem:
                problems.append(problem)
            elif row is not None:
                rows.append(row)
            if len(rows) + len(problems) >= options.chunk_rows:
                yield Chunk(_frame(rows), problems)
                rows, problems = [], []
        if not seen:
            raise FormatError("empty file")
        if rows or problems:
            yield Chunk(_frame(rows), problems)


def _records(text: io.TextIOBase) -> Iterator[tuple[int, str, Any]]:
    """(line or position, raw text, decoded value or an exception) for each record."""
    buffer = text.read(_READ)
    start = len(buffer) - len(buffer.lstrip())
    if start == len(buffer):
        return
    first = buffer[start]
    if first == "[":
        yield from _array(text, buffer[start + 1 :])
        return
    if first != "{":
        raise FormatError(f"not Kazoo CDR JSON: the file starts with {buffer[start : start + 20]!r}")
    line_end = buffer.find("\n", start)
    first_line = buffer[start : line_end if line_end >= 0 else len(buffer)].strip()
    try:
        first_value = json.loads(first_line)
        # a one-line API envelope is a document, not JSON lines
        is_lines = not (isinstance(first_value, dict) and isinstance(first_value.get("data"), list))
    except ValueError:
        is_lines = False
    if is_lines:
        yield from _lines(text, buffer)
        return
    whole = buffer + text.read()
    try:
        document = json.loads(whole)
    except ValueError as exc:
        raise FormatError(f"not valid JSON: {exc}") from None
    records = document.get("data") if isinstance(document.get("data"), list) else [document]
    for position, record in enumerate(records, start=1):
        yield position, json.dumps(record), record


def _array(text: io.TextIOBase, buffer: str) -> Iterator[tuple[int, str, Any]]:
    """Elements of a JSON array, decoded one at a time from a sliding buffer."""
    decoder = json.JSONDecoder()
    position = 0
    eof = False
    while True:
        stripped = buffer.lstrip(" \t\r\n,")
        buffer = stripped
        if buffer.startswith("]"):
            return
        if not buffer:
            if eof:
                raise FormatError(f"the JSON array is cut short after record {position}")
            more = text.read(_READ)
            eof = not more
            buffer += more
            continue
        try:
            value, end = decoder.raw_decode(buffer)
        except ValueError as exc:
            if not eof:  # maybe the record continues in the next block
                more = text.read(_READ)
                eof = not more
                buffer += more
                if more:
                    continue
            if position == 0:
                raise FormatError(f"not valid JSON: {exc}") from None
            raise FormatError(f"the JSON array is cut short or broken after record {position}: {exc}") from None
        position += 1
        yield position, buffer[:end], value
        buffer = buffer[end:]


def _lines(text: io.TextIOBase, buffer: str) -> Iterator[tuple[int, str, Any]]:
    rest = io.StringIO(buffer)
    number = 0
    for source in (rest, text):
        pending = ""
        for line in source:
            if source is rest and not line.endswith("\n"):
                pending = line  # a line split across the first block and the rest
                continue
            if pending and source is text:
                line, pending = pending + line, ""
            number += 1
            stripped = line.strip()
            if not stripped:
                continue
            try:
                yield number, stripped, json.loads(stripped)
            except ValueError as exc:
                yield number, stripped, exc
        if pending and source is rest:
            tail = text.readline()
            line = pending + tail
            number += 1
            stripped = line.strip()
            if stripped:
                try:
                    yield number, stripped, json.loads(stripped)
                except ValueError as exc:
                    yield number, stripped, exc


def _int(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"not a number: {value!r}") from None


def _canonical(number: int, raw: str, record: Any) -> tuple[dict | None, RowProblem | None]:
    if isinstance(record, Exception):
        return None, RowProblem(number, raw, [f"parse:json:{record}"])
    if not isinstance(record, dict):
        return None, RowProblem(number, raw, [f"parse:record:expected a JSON object, got {type(record).__name__}"])
    if "\\u0000" in raw and _holds_nul(record):  # PostgreSQL text and jsonb cannot hold it
        return None, RowProblem(number, raw, ["parse:nul_bytes:a value holds a NUL character (\\u0000)"])
    found = record.get(_CCV)
    ccv: dict = found if isinstance(found, dict) else {}

    def var(key: str):
        return ccv.get(key) if ccv.get(key) not in (None, "") else record.get(key)

    try:
        duration = _int(record.get("duration_seconds"))
        billing = _int(record.get("billing_seconds"))
        ringing = _int(record.get("ringing_seconds"))
        stamp = _int(record.get("timestamp"))
        if stamp is None:
            stamp = _int(record.get("pvt_created"))
    except ValueError as exc:
        return None, RowProblem(number, raw, [f"parse:number:{exc}"])
    reasons = []
    if not record.get("call_id"):
        reasons.append("parse:call_id:missing")
    if stamp is None:
        reasons.append("parse:timestamp:missing (neither timestamp nor pvt_created)")
    if reasons or stamp is None:
        return None, RowProblem(number, raw, reasons)
    end_s = stamp - GREGORIAN_OFFSET
    for name, seconds in (("timestamp", end_s), ("start_time", end_s - (duration or 0))):
        if not _FIRST <= seconds < _LAST:
            return None, RowProblem(number, raw, [f"parse:{name}:out of range {record.get(name, seconds)!r}"])
    end = pd.Timestamp(end_s, unit="s", tz="UTC")
    start = end - pd.Timedelta(seconds=duration or 0)
    code = str(record.get("hangup_code") or "")
    # username becomes user_id only without an owner_id; with one, it is kept as it came
    mapped = _CCV_MAPPED - {"username"} if (ccv.get("owner_id") or record.get("owner_id")) else _CCV_MAPPED
    used = _TOP | {_CCV} | {k for k in mapped if k not in ccv}  # flattened webhook keys
    if not record.get("from_uri"):
        used = used | {"from"}
    if not record.get("to_uri"):
        used = used | {"to"}
    extras = {k: v for k, v in record.items() if k not in used}
    rest_ccv = {k: v for k, v in ccv.items() if k not in mapped}
    if rest_ccv:
        extras[_CCV] = rest_ccv
    interaction = record.get("interaction_id") or ccv.get("call_interaction_id")
    return {
        "carrier_call_id": str(record["call_id"]),
        "call_key": str(interaction) if interaction else str(record["call_id"]),
        "start_time": start,
        "end_time": end,
        "answer_time": end - pd.Timedelta(seconds=billing) if billing else None,
        "other_leg_call_id": record.get("other_leg_call_id"),
        "direction": record.get("call_direction"),
        "duration_seconds": duration,
        "billing_seconds": billing,
        "ringing_seconds": ringing,
        "caller_number": record.get("caller_id_number"),
        "caller_name": record.get("caller_id_name"),
        "callee_number": record.get("callee_id_number"),
        "callee_name": record.get("callee_id_name"),
        "from_uri": record.get("from_uri") or record.get("from"),
        "to_uri": record.get("to_uri") or record.get("to"),
        "hangup_cause": record.get("hangup_cause"),
        "hangup_code": int(code.split(":")[-1]) if code.split(":")[-1].isdigit() else None,
        "disposition": record.get("disposition"),
        "account_id": var("account_id"),
        "user_id": var("owner_id") or var("username"),
        "realm": var("realm"),
        "authorizing_id": var("authorizing_id"),
        "record_type": "complete" if billing else "incomplete",
        "extras": json.dumps(extras, separators=(",", ":"), default=str),
        "line_number": number,
        "raw_text": raw,
    }, None


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in ("start_time", "end_time", "answer_time"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return conform(frame)
