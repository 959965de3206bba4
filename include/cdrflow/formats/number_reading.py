"""One raw number read under a dial plan: its E.164 form (or None) and its number type.

:func:`classify` is the reading; :mod:`cdrflow.formats.numbering` applies it to the distinct
values of a chunk. phonenumbers' parser does the numbering plans (some 10-15 microseconds a
value); the usual forms take a fast path through the same metadata (below) that gives the
parser's results at about a tenth of the cost.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

import phonenumbers
from phonenumbers import NumberParseException, shortnumberinfo

from cdrflow.formats.dial_plan import (
    ANONYMOUS,
    E164,
    EXTENSION,
    EXTENSION_DIGITS,
    NATIONAL,
    SHORT,
    SIP_URI,
    UNKNOWN,
    DialPlan,
    international_prefixes,
)

_SHORT_DIGITS = 6  # short codes are looked up up to this length (116000)
_MAX_DIGITS = 20  # E.164 allows 15 digits; with a prefix a few more, never 20

Result = tuple[str | None, str | None]  # (E.164 or None, type; None for an empty value)

_WITHHELD = frozenset(
    {"anonymous", "restricted", "private", "unavailable", "unknown", "withheld", "blocked", "anonymous caller"}
)
_SEPARATORS = re.compile(r"[\s\-.()/]+")  # visual separators inside a number: +1 (212) 555-1234
_DIGITS = re.compile(r"\+?[0-9]+")
_FEATURE = re.compile(r"[0-9*#]*[*#][0-9*#]*")  # feature and service codes: *72, #31#, *67 with digits
_NAME = re.compile(r"[A-Za-z0-9_.\-]*[A-Za-z][A-Za-z0-9_.\-]*")  # client1, s, h, ch1, alice.smith
_URI = re.compile(r"(?:[^<]*<)?\s*(sips?|tel):([^>]*)>?\s*", re.IGNORECASE)
_BARE_URI = re.compile(r"([^\s@/<>:;]+)@[^\s@/<>]+")  # user@host without a scheme (Kazoo, FreeSWITCH)


def classify(value: str, plan: DialPlan | None) -> Result:
    """The E.164 number (or None) and the type of one raw value (None for an empty one).
    Never raises: whatever cannot be read is :data:`UNKNOWN`."""
    value = value.strip()
    if not value:
        return None, None
    try:
        if value.isdigit() or value[0] == "+":  # most values: straight to the number
            found = _number(value, plan)
            if found is not None:
                return found
        return _classify(value, plan)
    except (NumberParseException, ValueError, TypeError, AttributeError, KeyError):
        return None, UNKNOWN


def _classify(value: str, plan: DialPlan | None) -> Result:
    if value.lower() in _WITHHELD:
        return None, ANONYMOUS
    uri = _URI.fullmatch(value)
    user = None
    if uri:
        scheme, rest = uri.group(1).lower(), uri.group(2)
        user = rest.split(";")[0] if scheme == "tel" else rest.split("@")[0].split(";")[0] if "@" in rest else ""
    elif bare := _BARE_URI.fullmatch(value):
        user = bare.group(1)
    if user is not None:  # a URI: its user part says what it is
        user = unquote(user).strip()
        if user.lower() in _WITHHELD:
            return None, ANONYMOUS
        found = _number(user, plan)
        return found if found is not None else (None, SIP_URI)
    found = _number(value, plan)
    if found is not None:
        return found
    if len(value) <= 40 and _NAME.fullmatch(value):
        return None, EXTENSION
    return None, UNKNOWN


def _number(value: str, plan: DialPlan | None) -> Result | None:
    """The reading of ``value`` as a telephone number, short code or extension; None when it
    is not made of digits (and separators)."""
    if value.isdigit() and value.isascii() or value[:1] == "+" and value[1:].isdigit() and value.isascii():
        found = _fast(value, plan)
        if found is not None:
            return found
    return _read(value, plan)


def _read(value: str, plan: DialPlan | None) -> Result | None:
    """:func:`_number` the long way: phonenumbers' parser (10-15 microseconds a value)."""
    if _FEATURE.fullmatch(value):
        return None, SHORT
    compact = _SEPARATORS.sub("", value) if not value.isdigit() else value
    if not _DIGITS.fullmatch(compact):
        return None
    digits = compact.lstrip("+")
    if not digits or len(digits) > _MAX_DIGITS:
        return None, UNKNOWN
    if compact.startswith("+"):
        return _international(digits)
    if plan is None:  # the country is unknown: short codes cannot be told from extensions
        return (None, EXTENSION) if len(digits) <= EXTENSION_DIGITS else (None, UNKNOWN)
    region = plan.country
    if len(digits) <= _SHORT_DIGITS and _is_short(digits, region):
        return None, SHORT
    if len(digits) <= plan.extension_digits:
        return None, EXTENSION
    for prefix in international_prefixes(plan):  # longest first
        if digits.startswith(prefix):
            return _international(digits[len(prefix) :])
    if plan.national_prefix and digits.startswith(plan.national_prefix):
        found = _international(f"{plan.country_code}{digits[len(plan.national_prefix) :]}")
        return (found[0], NATIONAL) if found[0] else found
    number = phonenumbers.parse(digits, region, keep_raw_input=True)  # the country's own prefixes
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        return None, NATIONAL  # a local number without its area code: no E.164 to give
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None, UNKNOWN
    national = number.country_code_source == phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY or (
        number.country_code == plan.country_code and digits.startswith(_own_national_prefix(region))
    )  # North America: 1 is both the country code and the national prefix, 1 212... is national
    return _e164(number), NATIONAL if national else E164


def _own_national_prefix(region: str) -> str:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return (metadata.national_prefix if metadata else None) or "-"  # "-": no digit string starts so


def _international(digits: str) -> Result:
    """``digits`` after a '+' or an international prefix: country code and number."""
    if not digits:
        return None, UNKNOWN
    number = phonenumbers.parse("+" + digits, None)
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None, UNKNOWN
    return _e164(number), E164


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=256)
def _short_lengths(region: str) -> frozenset[int]:
    metadata = phonenumbers.PhoneMetadata.short_metadata_for_region(region)
    return frozenset(metadata.general_desc.possible_length) if metadata and metadata.general_desc else frozenset()


def _is_short(digits: str, region: str) -> bool:
    if len(digits) not in _short_lengths(region):  # most extensions: no short code is that long
        return False
    if shortnumberinfo.is_emergency_number(digits, region):
        return True
    try:
        return shortnumberinfo.is_valid_short_number_for_region(phonenumbers.parse(digits, region), region)
    except NumberParseException:
        return False


# --- the fast path ------------------------------------------------------------------------------
# Most values are plain digits in the country's usual forms, and phonenumbers' parse of them
# comes down to a country code, a prefix stripped and a length looked up in its metadata. The
# fast path does exactly that from the same metadata, and leaves every case where phonenumbers'
# parser does more (a national prefix that is a pattern, a number that begins like the country
# code or a prefix after the country code, short numbers) to it: the results are the same
# (tests/test_numbering.py checks it on generated numbers), at about a tenth of the cost.


@dataclass(frozen=True)
class Country:
    code: str  # calling code, as digits
    lengths: frozenset[int]  # possible lengths of a national significant number
    local: frozenset[int]  # lengths of numbers dialled without their area code
    strips: tuple[str, ...] | None  # the national prefixes phonenumbers strips; None: a pattern
    national: str  # the national prefix ("-" for none: no digit string starts with it)
    pattern: re.Pattern[str] | None  # what a national significant number looks like


_SIMPLE_PREFIXES = re.compile(r"[0-9]+(?:\|[0-9]+)*")


@functools.lru_cache(maxsize=512)
def country_of(code: int) -> Country | None:
    region = phonenumbers.region_code_for_country_code(code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    if metadata is None or metadata.general_desc is None:
        return None
    pattern = metadata.national_prefix_for_parsing
    if pattern is None:
        strips: tuple[str, ...] | None = ()
    elif _SIMPLE_PREFIXES.fullmatch(pattern) and metadata.national_prefix_transform_rule is None:
        strips = tuple(pattern.split("|"))
    else:
        strips = None
    desc = metadata.general_desc
    return Country(
        str(code),
        frozenset(desc.possible_length),
        frozenset(desc.possible_length_local_only),
        strips,
        metadata.national_prefix or "-",
        re.compile(desc.national_number_pattern) if desc.national_number_pattern else None,
    )


def _calling_code(digits: str) -> Country | None:
    if digits[0] == "0":
        return None
    for n in (1, 2, 3):  # calling codes are prefix-free
        if int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return country_of(int(digits[:n]))
    return None


def _fast(value: str, plan: DialPlan | None) -> Result | None:
    """``value`` (digits, or '+' and digits) read from phonenumbers' metadata without its
    parser; None when the parser is needed."""
    if value[0] == "+":
        return _fast_international(value[1:])
    if plan is None:
        return (None, EXTENSION) if len(value) <= EXTENSION_DIGITS else (None, UNKNOWN)
    if len(value) <= max(_SHORT_DIGITS, plan.extension_digits) or len(value) > _MAX_DIGITS:
        return None  # short codes and extensions: the parser's short-number metadata
    if plan.idd is None:
        return None  # an international prefix that is a pattern: the parser knows it
    for prefix in plan.idd:
        if value.startswith(prefix):
            return _fast_international(value[len(prefix) :])
    country = country_of(plan.country_code)
    if country is None or country.strips is None:
        return None
    if value.startswith(country.code):  # 79161234567: the country code without its '+'?
        return _fast_without_plus(value, country)
    if plan.national_prefix is not None:
        if not value.startswith(plan.national_prefix):
            return None  # the country's own prefix may still apply: the parser knows
        found = _fast_international(country.code + value[len(plan.national_prefix) :])
        return (found[0], NATIONAL) if found is not None and found[0] else found
    stripped = next((value[len(p) :] for p in country.strips if value.startswith(p)), None)
    if stripped is not None:  # the parser strips it when the whole is no number and the rest is
        if len(value) in country.lengths or len(value) in country.local:
            return None
        if len(stripped) not in country.lengths or len(stripped) in country.local:
            return None
        value = stripped
    if len(value) in country.local:
        return None, NATIONAL
    if len(value) in country.lengths:
        return f"+{country.code}{value}", NATIONAL
    return None


def _fast_without_plus(value: str, country: Country) -> Result | None:
    """phonenumbers reads digits that begin with the country's calling code as that code and a
    number when the whole is no national number and the rest is one, or the whole is too long."""
    rest = value[len(country.code) :]
    if not rest or any(rest.startswith(p) for p in country.strips or ()) or country.pattern is None:
        return None
    if not (
        (not country.pattern.fullmatch(value) and country.pattern.fullmatch(rest)) or len(value) > max(country.lengths)
    ):
        return None  # read as a national number: the parser's longer way
    if len(rest) not in country.lengths or len(rest) in country.local:
        return None
    return f"+{value}", NATIONAL if value.startswith(country.national) else E164


def _fast_international(digits: str) -> Result | None:
    if not digits or len(digits) > _MAX_DIGITS:
        return None
    country = _calling_code(digits)
    if country is None or country.strips is None:
        return None
    national = digits[len(country.code) :]
    prefix = next((p for p in country.strips if national.startswith(p)), None)
    if prefix is not None:  # a national prefix after the country code (+44 020...): as the parser
        if country.pattern is None:
            return None
        stripped = national[len(prefix) :]
        if not (country.pattern.fullmatch(national) and not country.pattern.fullmatch(stripped)):
            length = len(stripped)  # the parser keeps the stripped number if its length is possible or too long
            if (length in country.lengths and length not in country.local) or length > max(country.lengths):
                national = stripped
    if len(national) in country.lengths and len(national) not in country.local:
        return f"+{country.code}{national}", E164
    return None
