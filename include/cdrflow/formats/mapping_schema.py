"""Mapping files: YAML that describes a carrier's layout, so a new carrier needs no code.

Every key (documented with examples in ``mappings/README.md``):

layout            ``delimited`` (default), ``fixed_width`` or ``xml``
record            xml: the element that is one CDR (its leaves are the columns, named by their
                  path below it, e.g. ``basicModule/startTime``)
delimiter         field separator (delimited; default ``,``)
quotechar         quote character (default ``"``; ``null`` for none)
header            the first record line is a header with column names (default false)
header_prefix     a marker the header line starts with, removed before reading names (``:``)
normalise_header  compare header names lower-cased, with spaces and dashes as ``_``
names             column names for a file without a header (used in ``columns`` and extras)
skip_lines        lines to skip before the header or first record (default 0)
comment_prefix    lines starting with it are ignored (``#``)
encoding          ``utf-8`` (default, a BOM is accepted) or ``latin-1`` and other Python codecs
timezone          IANA zone of timestamps without an offset (default UTC)
timestamp_format  strftime pattern, or ``iso8601``, ``unix``, ``unix_ms``, ``gregorian``
timestamp_formats per-field overrides, e.g. ``{answer_time: "%d.%m.%Y %H:%M:%S"}``
duration_unit     unit of duration/billing/ringing seconds: ``seconds`` (default), ``ms``,
                  ``go`` (Go durations such as ``10s``, ``1m30s``), ``hhmmsscc`` (8 digits)
columns           canonical field -> source: a header name, a list of alternative names (the
                  first present is used), a 0-based position, for
                  fixed_width ``{start: S, end: E}`` (0-based, end excluded), or
                  ``{join: [sources...], sep: "-"}`` to build one value from several
optional          fields whose source column may be missing from a file (left empty then)
constants         canonical field -> fixed value for every row
value_maps        canonical field -> {source value: canonical value}; unmapped values kept
derive            ``start_time: end_minus_duration``, ``end_time: start_plus_duration``,
                  ``duration_seconds: end_minus_start``, ``billing_seconds: end_minus_answer``
record_filter     ``{source: S, pattern: REGEX}``: only matching lines are records (others skipped)
trailer           fixed_width: ``{pattern: REGEX, count: {start: S, end: E}}``: the trailer line's
                  record count must equal the records read, or the file is refused
description       free text

Every source column not named under ``columns`` goes to extras under its header name (or
``col_<position>`` without a header).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cdrflow.config import checks
from cdrflow.formats.base import CANONICAL, FormatError

KEYS = {
    "record",
    "optional",
    "names",
    "normalise_header",
    "layout",
    "delimiter",
    "quotechar",
    "header",
    "header_prefix",
    "skip_lines",
    "comment_prefix",
    "encoding",
    "timezone",
    "timestamp_format",
    "timestamp_formats",
    "duration_unit",
    "columns",
    "constants",
    "value_maps",
    "derive",
    "record_filter",
    "trailer",
    "description",
}
FIELDS = set(CANONICAL) - {"extras"}
LAYOUTS = {"delimited", "fixed_width", "xml"}
DURATION_UNITS = {"seconds", "ms", "go", "hhmmsscc"}
DERIVATIONS = {
    "start_time": {"end_minus_duration"},
    "end_time": {"start_plus_duration"},
    "duration_seconds": {"end_minus_start"},
    "billing_seconds": {"end_minus_answer"},
}


class MappingError(FormatError):
    """A mapping file that cannot be used, with the key that is wrong."""


def load_mapping(path: Path) -> dict:
    """Read and check a mapping file."""
    try:
        mapping = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping {path} is not valid YAML: {exc}") from None
    return check_mapping(mapping, str(path))


def _fields(where: str, value: dict, name: str) -> None:
    if not isinstance(value, dict):
        raise MappingError(f"{where}: '{name}' must be a mapping of canonical field -> value")
    unknown = sorted(set(value) - FIELDS)
    if unknown:
        raise MappingError(
            f"{where}: '{name}' names unknown canonical field(s) {unknown}; known: {', '.join(sorted(FIELDS))}"
        )


def check_mapping(mapping: object, where: str = "mapping") -> dict:
    if not isinstance(mapping, dict):
        raise MappingError(f"{where}: a mapping file is a YAML mapping of keys")
    unknown = sorted(set(mapping) - KEYS)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {unknown}; known keys: {', '.join(sorted(KEYS))}")
    if mapping.get("layout", "delimited") not in LAYOUTS:
        raise MappingError(f"{where}: layout must be one of {sorted(LAYOUTS)}, got {mapping['layout']!r}")
    if "columns" not in mapping:
        raise MappingError(f"{where}: 'columns' is required (canonical field -> source column)")
    for name in ("columns", "constants", "value_maps", "timestamp_formats", "derive"):
        if name in mapping:
            _fields(where, mapping[name], name)
    if "carrier_call_id" not in mapping["columns"]:
        raise MappingError(f"{where}: columns must name the source of carrier_call_id")
    if "start_time" not in mapping["columns"] and mapping.get("derive", {}).get("start_time") is None:
        raise MappingError(f"{where}: columns must name start_time, or derive it")
    if mapping.get("duration_unit", "seconds") not in DURATION_UNITS:
        raise MappingError(f"{where}: duration_unit must be one of {sorted(DURATION_UNITS)}")
    for key, check in (("timezone", checks.time_zone), ("encoding", checks.encoding)):
        if key in mapping:
            try:
                check(mapping[key])
            except ValueError as exc:  # refused here, not by every file it would fail to parse
                raise MappingError(f"{where}: {key}: {exc}") from None
    for field_name, rule in mapping.get("derive", {}).items():
        if rule not in DERIVATIONS.get(field_name, set()):
            raise MappingError(
                f"{where}: derive {field_name}: {rule!r} is not one of {sorted(DERIVATIONS.get(field_name, set()))}"
            )
    if mapping.get("layout") == "xml" and not mapping.get("record"):
        raise MappingError(f"{where}: layout xml needs 'record', the element that is one CDR")
    if mapping.get("layout") == "fixed_width":
        for field_name, source in mapping["columns"].items():
            if not (isinstance(source, dict) and {"start", "end"} <= set(source)):
                raise MappingError(f"{where}: fixed_width column {field_name} needs {{start, end}}")
    return mapping
