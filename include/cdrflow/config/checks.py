"""Checks of single settings shared by the carrier file and the mapping files: each returns the
value or raises ValueError with a message that names the bad value (the caller adds where)."""

from __future__ import annotations

import codecs
import re
import zoneinfo

_FIXED_OFFSET = re.compile(r"^[+-]\d{2}:?\d{2}$")  # "+02:00", "-0530": what the parsers accept too


def time_zone(value: str) -> str:
    """An IANA time zone name that Python's zoneinfo knows, ``UTC`` or a fixed offset (``+02:00``)."""
    if isinstance(value, str) and (value.upper() == "UTC" or _FIXED_OFFSET.match(value)):
        return value
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def encoding(value: str) -> str:
    """A character set that Python's codecs know."""
    try:
        codecs.lookup(value)
    except (LookupError, TypeError):
        raise ValueError(f"unknown encoding {value!r}") from None
    return value
