"""The ``filters`` of a report request (seed 001, ``api-contract.md`` §A2.4, §A2.5): read and checked.

A filter is an object with a ``filter_type`` (``and`` | ``or``) and one or more criteria:

- ``cli`` (caller number) with ``cli_filter`` ``contains`` | ``starts_with`` | ``ends_with``
  (default ``contains``);
- ``cld`` (callee number) with ``cld_filter``, the same;
- ``tags_list``: a list of tags, or one tag as a string; a call matches when it carries **any** of
  them.

Several criteria in one object are ANDed (the Telnyx v2 examples put them together). An object may
also arrive as a JSON string of such an object (the seed's schema says "Array of strings"); either
way it is echoed back as an object.

The seed's rule: "The first object in the filter list must specify a filter_type of and. You can not
follow an or with another and", i.e. the sequence of filter types matches ``and (and)* (or)*``.
The list combines as a left fold from TRUE (reading (a) of §A2.5 item 1)::

    acc := TRUE;  for f in filters: acc := acc AND f  |  acc OR f

so ``[and f1, and f2, or f3, or f4]`` selects ``(f1 AND f2) OR f3 OR f4``. The rule that the first
filter is ``and`` is what this reading needs (``TRUE OR f`` would select everything).
"""

from __future__ import annotations

import json
from typing import Any

from cdrflow.config.errors import CdrflowError

FILTER_TYPES = ("and", "or")
MATCHES = ("contains", "starts_with", "ends_with")
MAX_FILTERS = 50
MAX_TAGS = 50
MAX_VALUE = 64  # characters of a number fragment or a tag
_KEYS = {"filter_type", "cli", "cli_filter", "cld", "cld_filter", "tags_list"}


class InvalidRequest(CdrflowError):
    """A report request the API answers 400 to; ``field`` is a JSON pointer to the culprit."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_text(value: Any, where: str, *, limit: int, allow_empty: bool = False) -> str:
    """A string of at most ``limit`` characters without control characters (PostgreSQL cannot
    store NUL, and a CR or tab in a name would travel into file names and CSV cells)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}: must be a string", where)
    if not value and not allow_empty:
        raise InvalidRequest(f"{where}: must not be empty", where)
    if len(value) > limit:
        raise InvalidRequest(f"{where}: at most {limit} characters (got {len(value)})", where)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidRequest(f"{where}: control characters are not allowed", where)
    return value


def _one(item: Any, where: str) -> dict[str, Any]:
    if isinstance(item, str):  # the schema's "Array of strings": a JSON-encoded filter object
        try:
            item = json.loads(item)
        except ValueError:
            raise InvalidRequest(
                f'{where}: a filter is an object such as {{"filter_type": "and", "cli": "+1312"}} '
                "(or that object as a JSON string)",
                where,
            ) from None
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where}: a filter must be an object with filter_type and cli, cld or tags_list", where)
    unknown = sorted(str(k) for k in item if k not in _KEYS)
    if unknown:
        raise InvalidRequest(
            f"{where}: unknown filter key(s) {', '.join(unknown)[:200]} (known: {', '.join(sorted(_KEYS))})", where
        )
    kind = item.get("filter_type")
    if kind not in FILTER_TYPES:
        raise InvalidRequest(f"{where}/filter_type: must be 'and' or 'or'", f"{where}/filter_type")
    out: dict[str, Any] = {"filter_type": kind}
    for number in ("cli", "cld"):
        how = item.get(f"{number}_filter")
        if number not in item:
            if how is not None:
                raise InvalidRequest(f"{where}/{number}_filter: given without {number}", f"{where}/{number}_filter")
            continue
        out[number] = check_text(item[number], f"{where}/{number}", limit=MAX_VALUE)
        how = "contains" if how is None else how
        if how not in MATCHES:
            raise InvalidRequest(
                f"{where}/{number}_filter: must be one of {', '.join(MATCHES)}", f"{where}/{number}_filter"
            )
        out[f"{number}_filter"] = how
    if "tags_list" in item:
        tags = item["tags_list"]
        tags = [tags] if isinstance(tags, str) else tags
        if not isinstance(tags, list) or not tags:
            raise InvalidRequest(f"{where}/tags_list: a non-empty list of tags (or one tag)", f"{where}/tags_list")
        if len(tags) > MAX_TAGS:
            raise InvalidRequest(f"{where}/tags_list: at most {MAX_TAGS} tags", f"{where}/tags_list")
        out["tags_list"] = [check_text(t, f"{where}/tags_list/{i}", limit=MAX_VALUE) for i, t in enumerate(tags)]
    if len(out) == 1:
        raise InvalidRequest(f"{where}: a filter needs cli, cld or tags_list", where)
    return out


def read_filters(value: Any) -> list[dict[str, Any]]:
    """The request's ``filters`` checked and normalised (absent, null or ``[]``: no filtering).

    Raises :class:`InvalidRequest` for a wrong shape, an unknown enum value, or a sequence that is
    not ``and (and)* (or)*``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("filters: must be a list of filter objects", "/filters")
    if len(value) > MAX_FILTERS:
        raise InvalidRequest(f"filters: at most {MAX_FILTERS} filters", "/filters")
    filters = [_one(item, f"/filters/{i}") for i, item in enumerate(value)]
    if filters and filters[0]["filter_type"] != "and":
        raise InvalidRequest("filters: the first filter must have filter_type 'and'", "/filters/0/filter_type")
    seen_or = False
    for i, f in enumerate(filters):
        if f["filter_type"] == "or":
            seen_or = True
        elif seen_or:
            raise InvalidRequest(
                f"filters: an 'and' filter (#{i}) cannot follow an 'or' filter", f"/filters/{i}/filter_type"
            )
    return filters
