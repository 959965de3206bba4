"""The CDRs API's identifiers: a CDR's id and a list page's ``start_key``.

**CDR id.** Kazoo's ids look like ``YYYYMM-<call_id>`` (the month names the monthly database the
document lives in). A cdrflow leg is identified by the primary key of ``calls``, (carrier,
record_key, start_time), and ``calls`` is partitioned by the month of ``start_time``; the bigint
``id`` column has no index (one would slow every COPY of the loader, whose speed is measured). So
the id carries the primary key itself::

    YYYYMM-base64url(carrier 0x1F start_time_in_microseconds 0x1F record_key)

``YYYYMM`` is the UTC month of ``start_time``, i.e. the partition; a fetch by id is one lookup
through the primary key of that one partition. It is unique because the key is; it is stable
(nothing in it changes after loading); it is opaque but URL-safe (no padding, no ``/``). Carrier
codes hold no 0x1F (``^[a-z0-9][a-z0-9_.-]*$``), so the record key, last, may contain anything.
A text that does not decode, or whose month does not match its start, is simply no CDR (404).

**Page key.** ``start_key``/``next_start_key`` name the row a page starts at (inclusive, like
CouchDB's ``startkey`` under Kazoo): the row's sort key (its timestamp to the microsecond, then
its primary key), base64url-encoded the same way. Keyset pagination: a page is a range scan from
its key, never an OFFSET, so a page costs the same however deep it is, and rows loaded meanwhile
never shift a walk already under way.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cdrflow.api.errors import bad_request

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_SEP = "\x1f"
_ID = re.compile(r"([0-9]{4})([0-9]{2})-([A-Za-z0-9_-]{4,2000})")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{4,2000}")
_MICROS = re.compile(r"-?[0-9]{1,19}")


@dataclass(frozen=True)
class CallKey:
    """The primary key of one leg in ``calls``."""

    carrier: str
    record_key: str
    start_time: datetime


@dataclass(frozen=True)
class PageKey:
    """Where a page starts: the sort timestamp, then the leg's primary key."""

    moment: datetime
    call: CallKey


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // _MICRO


def _moment(text: str) -> datetime | None:
    if not _MICROS.fullmatch(text):
        return None
    try:
        return EPOCH + timedelta(microseconds=int(text))
    except OverflowError:
        return None


def _encode(*parts: str) -> str:
    return base64.urlsafe_b64encode(_SEP.join(parts).encode()).decode().rstrip("=")


def _decode(token: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def cdr_id(carrier: str, record_key: str, start_time: datetime) -> str:
    """The id of a leg, ``YYYYMM-...`` (see the module docstring)."""
    month = start_time.astimezone(UTC).strftime("%Y%m")
    return f"{month}-{_encode(carrier, str(_micros(start_time)), record_key)}"


def parse_cdr_id(text: str) -> CallKey | None:
    """The leg a CDR id names, or None when ``text`` is no id this API gave out."""
    found = _ID.fullmatch(text)
    if not found:
        return None
    raw = _decode(found.group(3))
    if raw is None or raw.count(_SEP) < 2:
        return None
    carrier, micros, record_key = raw.split(_SEP, 2)
    start = _moment(micros)
    if start is None or not carrier or not record_key:
        return None
    if (start.year, start.month) != (int(found.group(1)), int(found.group(2))):
        return None
    return CallKey(carrier, record_key, start)


def page_key(moment: datetime, call: CallKey) -> str:
    """The opaque ``start_key`` of a row."""
    return _encode(str(_micros(moment)), call.carrier, str(_micros(call.start_time)), call.record_key)


def parse_page_key(text: str) -> PageKey:
    """A ``start_key`` this API gave out; 400 for anything else."""
    raw = _decode(text) if _TOKEN.fullmatch(text) else None
    parts = raw.split(_SEP, 3) if raw is not None else []
    if len(parts) == 4:
        moment, start = _moment(parts[0]), _moment(parts[2])
        if moment is not None and start is not None and parts[1] and parts[3]:
            return PageKey(moment, CallKey(parts[1], parts[3], start))
    raise bad_request("start_key is not a key this API handed out (use next_start_key of the previous page)")
