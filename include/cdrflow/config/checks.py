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


def country(value: str) -> str:
    """An ISO 3166 region that phonenumbers has a numbering plan for (RU, DE, US, GB), upper-cased."""
    import phonenumbers  # its metadata loads on first use; only carrier files with a dial plan pay

    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown country {value!r}: an ISO 3166 region code with a numbering plan, e.g. RU, DE, US")
    return value.upper()


def digits(value: str) -> str:
    """A dialling prefix: one to four digits, as a string (YAML reads 00 as 0, 011 as 9)."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 4:
        raise ValueError(f"{value!r} is not a dialling prefix: 1 to 4 digits, quoted ('00')")
    return value
