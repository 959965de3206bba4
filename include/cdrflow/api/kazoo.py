"""Kazoo crossbar conventions the CDRs API follows (``api-contract.md`` §0.5, §0.7, §A3.2).

- Gregorian seconds: seconds since 0000-01-01T00:00:00Z = Unix + 62167219200 (seed 003's tip).
- The time range: ``created_from`` and ``created_to`` in Gregorian seconds, both inclusive;
  ``created_to`` defaults to now and ``created_from`` to ``created_to`` minus the longest range
  (31 days + 1 hour). A range running backwards or longer than that answers 400 with Kazoo's own
  ``date_range`` messages (crossbar_view.erl), so clients that show them keep working.
- The success envelope: ``{"auth_token", "data", "request_id", "revision", "status": "success",
  "page_size", "start_key", "next_start_key"?}``; a list may be written in pieces
  (:func:`envelope_head` and :func:`envelope_tail`) so that it streams.
- Content negotiation: ``Accept: text/csv`` (seed 003) or ``application/octet-stream`` (seed 002),
  or ``?accept=csv|text/csv`` as Kazoo tunnels it, gives CSV; anything else (``*/*`` as kazoo-sdk
  and PyKazoo send, JSON, nothing) gives JSON, since no seed lists 406.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cdrflow.api.errors import ApiError, bad_request

GREGORIAN_OFFSET = 62167219200  # Gregorian seconds at 1970-01-01T00:00:00Z
MAX_RANGE = 31 * 86400 + 3600  # seconds: Kazoo's 31 days, plus an hour of slack (§A3.2)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INTEGER = re.compile(r"[0-9]{1,15}")

CSV_TYPES = ("text/csv", "application/octet-stream")
JSON_TYPE = "application/json"


def to_gregorian(moment: datetime) -> int:
    """Whole Gregorian seconds of an aware datetime (the fraction is dropped, as Kazoo stores)."""
    return GREGORIAN_OFFSET + (moment - EPOCH) // timedelta(seconds=1)


def from_gregorian(seconds: int) -> datetime:
    """The UTC instant of a Gregorian second; OverflowError/ValueError outside years 1-9999."""
    return EPOCH + timedelta(seconds=seconds - GREGORIAN_OFFSET)


def parse_integer(name: str, raw: str | None) -> int | None:
    """A non-negative integer query parameter, None when absent; 400 for anything else."""
    if raw is None:
        return None
    if not _INTEGER.fullmatch(raw.strip()):
        raise bad_request(f"{name} must be a non-negative integer, got {_shown(raw)}", code="invalid_request")
    return int(raw.strip())


def parse_boolean(name: str, raw: str | None) -> bool | None:
    """``true``/``false`` (Kazoo's spelling) as a bool, None when absent; 400 for anything else."""
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise bad_request(f"{name} must be true or false, got {_shown(raw)}")


def _shown(raw: str) -> str:
    return json.dumps(raw[:40] + ("..." if len(raw) > 40 else ""))


@dataclass(frozen=True)
class TimeRange:
    """A Kazoo range, inclusive at both ends, in Gregorian seconds and as UTC instants."""

    created_from: int
    created_to: int

    @property
    def start(self) -> datetime:
        return from_gregorian(self.created_from)

    @property
    def end_exclusive(self) -> datetime:
        """The first instant after the range: created_to is inclusive to its whole second."""
        return from_gregorian(self.created_to + 1)


def time_range(raw_from: str | None, raw_to: str | None, now: datetime, max_range: int = MAX_RANGE) -> TimeRange:
    """The range a list asks for, with Kazoo's defaults and Kazoo's 400 ``date_range`` messages."""
    created_to = parse_integer("created_to", raw_to)
    if created_to is None:
        created_to = to_gregorian(now)
    created_from = parse_integer("created_from", raw_from)
    if created_from is None:
        created_from = created_to - max_range
    span = created_to - created_from
    if span < 0:
        message = f"created_to {created_to} is prior to created_from {created_from}"
        raise _date_range(message, created_from)
    if span > max_range:
        message = f"created_to {created_to} is more than {max_range} seconds from created_from {created_from}"
        raise _date_range(message, created_to)
    found = TimeRange(created_from, created_to)
    try:  # both ends, and the margin the query adds below the start, must be real dates
        _ = (found.start - timedelta(days=2), found.end_exclusive + timedelta(days=2))
    except (OverflowError, ValueError):
        raise bad_request(
            f"created_from {created_from} / created_to {created_to} are not Gregorian seconds of years 1 to 9999",
            code="date_range",
        ) from None
    return found


def _date_range(message: str, cause: int) -> ApiError:
    """Kazoo's validation error for a range: ``data.created_from.date_range.{message, cause}``."""
    data = {"created_from": {"date_range": {"message": message, "cause": cause}}}
    return ApiError(400, message, code="date_range", data=data)


def wants_csv(accept_header: str | None, accept_param: str | None) -> str | None:
    """The CSV media type the client asked for (to echo in Content-Type), or None for JSON.

    ``?accept=`` wins over the header (Kazoo's tunnel for clients that cannot set headers). In the
    header the most preferred supported type wins (highest q, then the first listed); ``*/*`` and
    ``application/*`` count as JSON."""
    if accept_param is not None:
        value = accept_param.strip().lower()
        if value in ("csv", "text/csv"):
            return "text/csv"
        return "application/octet-stream" if value == "application/octet-stream" else None
    best: tuple[float, int, str | None] | None = None
    for position, part in enumerate((accept_header or "").split(",")):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        if media in CSV_TYPES:
            chosen: str | None = media
        elif media in (JSON_TYPE, "*/*", "application/*"):
            chosen = None
        else:
            continue
        quality = _quality(params)
        if quality <= 0:
            continue
        if best is None or (quality, -position) > (best[0], best[1]):
            best = (quality, -position, chosen)
    return best[2] if best else None


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def envelope(
    *, auth_token: str | None, data: Any, request_id: str, revision: str, page: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole success envelope (one CDR, or a page of a v2 list)."""
    body: dict[str, Any] = {"auth_token": auth_token or "", "data": data}
    body.update(page or {})
    body.update({"request_id": request_id, "revision": revision, "status": "success"})
    return body


def envelope_head(auth_token: str | None) -> str:
    """The opening of a streamed list envelope, up to the ``[`` of ``data``."""
    return '{"auth_token":' + json.dumps(auth_token or "") + ',"data":['


def envelope_tail(*, request_id: str, page: dict[str, Any]) -> str:
    """The end of a streamed list envelope: the page keys, known only once every row is out."""
    rest = {**page, "request_id": request_id, "revision": "undefined", "status": "success"}
    return "]," + json.dumps(rest, separators=(",", ":"))[1:]
