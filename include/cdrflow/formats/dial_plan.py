"""A carrier's dial plan, and the number types it helps to tell apart.

How a carrier's switches write numbers (``dial_plan`` in the carrier file): the country, whose
national (trunk) and international prefixes come from phonenumbers' metadata (Google's
libphonenumber) unless the plan overrides them, and how long an internal extension may be.
:mod:`cdrflow.formats.numbering` reads the numbers of the carrier's calls with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import phonenumbers

# The number types, in the order of the README's table.
E164 = "e164"  # international: written with '+', an international prefix or a country code
NATIONAL = "national"  # a number of the plan's country, with or without its national prefix
SHORT = "short"  # a short code of the plan's country (112, 911, 116000) or a feature code (*72)
EXTENSION = "extension"  # an internal address: a few digits (2001) or a name (client1, s, h, ch1)
SIP_URI = "sip_uri"  # a SIP URI whose user part is not a number (sip:alice@example.com)
ANONYMOUS = "anonymous"  # withheld: anonymous, restricted, private, unavailable, unknown
UNKNOWN = "unknown"  # anything else: digits no plan reads, a number of impossible length, garbage
TYPES = (E164, NATIONAL, SHORT, EXTENSION, SIP_URI, ANONYMOUS, UNKNOWN)

EXTENSION_DIGITS = 5  # default: internal extensions have up to this many digits


@dataclass(frozen=True)
class DialPlan:
    """How a carrier's switches write numbers. ``country``: ISO 3166 region (RU, DE, US);
    ``national_prefix``: the trunk prefix (8 in Russia, 0 in much of Europe, 1 in North
    America), None for the country's own from phonenumbers; ``international_prefixes``: read as
    international besides the country's own (810 in Russia, 00 in Germany, 011 in North
    America) and '+'; ``extension_digits``: internal extensions are up to this long."""

    country: str
    national_prefix: str | None = None
    international_prefixes: tuple[str, ...] = ()
    extension_digits: int = EXTENSION_DIGITS

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> DialPlan | None:
        """The plan of a carrier's ``config['dial_plan']`` (checked when the carrier file was
        read, see :mod:`cdrflow.config.carrier_file`); None without one."""
        if not raw:
            return None
        prefixes = raw.get("international_prefixes") or ()
        return cls(
            country=str(raw["country"]).upper(),
            national_prefix=raw.get("national_prefix"),
            international_prefixes=tuple(sorted({str(p) for p in prefixes}, key=len, reverse=True)),
            extension_digits=int(raw.get("extension_digits", EXTENSION_DIGITS)),
        )

    @functools.cached_property
    def country_code(self) -> int:
        return phonenumbers.country_code_for_region(self.country)

    @functools.cached_property
    def idd(self) -> tuple[str, ...] | None:
        """The international prefixes to strip by hand (:func:`international_prefixes`); None
        when the country's own is a pattern only phonenumbers' parser reads."""
        return international_prefixes(self) if plain_idd(self.country) else None


@functools.lru_cache(maxsize=256)
def international_prefixes(plan: DialPlan) -> tuple[str, ...]:
    """The plan's international prefixes and the country's own where phonenumbers spells them
    as digits (810, 00, 011; a pattern such as Australia's is left to phonenumbers), longest
    first: checked before a configured national prefix, which may begin like one (8 and 810)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(plan.country)
    own = [metadata.international_prefix, metadata.preferred_international_prefix] if metadata else []
    found = set(plan.international_prefixes) | {p for p in own if p and p.isdigit()}
    return tuple(sorted(found, key=lambda p: (-len(p), p)))


@functools.lru_cache(maxsize=256)
def plain_idd(region: str) -> bool:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return metadata is not None and (metadata.international_prefix or "0").isdigit()
