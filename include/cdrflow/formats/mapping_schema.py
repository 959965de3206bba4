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
key               what makes one record unique (``record_key``): a list of canonical fields or
                  source columns whose values are joined with ``|`` (default ``[carrier_call_id]``:
                  one record per call id); e.g. ``[call_id, leg]`` when several legs share a call id;
                  a 0-based position names a column of a file without a header
call              the call a record (leg) belongs to (``call_key``): a list like ``key``, joined with
                  ``|`` (default: ``carrier_call_id``, each record its own call); e.g. ``[callid]``
                  when INVITE and BYE records of one dialog, or partial records of one call, are
                  legs of one call. A record whose ``call`` columns are all empty is its own call
record_filter     ``{source: S, pattern: REGEX}``: only matching lines are records (others skipped)
trailer           fixed_width: ``{pattern: REGEX, count: {start: S, end: E}}``: the trailer line's
                  record count must equal the records read, or the file is refused
billable_leg      which leg of a call bills, for carriers of this layout that do not set their own
                  (``answered_longest``, ``originating``, ``every_leg``, ``merged``; default
                  ``every_leg``): ``merged`` where the legs are pieces of one record (OpenSIPS
                  INVITE and BYE, CGRateS partials); see README, "Calls"
checks            validation severities for this layout: check name (or, when not ambiguous,
                  its column) -> ``reject``, ``flag`` or ``fail``, e.g. ``{caller_number: reject}``;
                  over the suite's defaults, under the carrier's own ``checks:`` (README, Validation)
description       free text

Every source column not named under ``columns`` goes to extras under its header name (or
``col_<position>`` without a header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator, model_validator

from cdrflow.config import checks, severities
from cdrflow.formats.base import CANONICAL, FormatError

FIELDS = set(CANONICAL) - {
    "extras",
    "record_key",
    "quality",
    "caller_e164",
    "callee_e164",
    "caller_number_type",
    "callee_number_type",
}  # record_key: see ``key``; the others are set after parsing
DERIVATIONS = {
    "start_time": {"end_minus_duration"},
    "end_time": {"start_plus_duration"},
    "duration_seconds": {"end_minus_start"},
    "billing_seconds": {"end_minus_answer"},
}


class MappingError(FormatError):
    """A mapping file that cannot be used, with the key that is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Slice(_Strict):
    """fixed_width: characters ``start`` (0-based) to ``end`` (excluded) of a line."""

    start: NonNegativeInt
    end: NonNegativeInt


class Join(_Strict):
    """One value built from several sources, joined by ``sep``."""

    join: list[Source]
    sep: str = ""


Source = str | int | list[str] | Slice | Join  # a header name, a position, alternatives, a slice, a join
Join.model_rebuild()


class RecordFilter(_Strict):
    source: str | int | None = None  # the column to match; fixed_width matches the whole line
    pattern: str


class Trailer(_Strict):
    pattern: str
    count: Slice


def _canonical(value: dict, key: str) -> dict:
    unknown = sorted(set(value) - FIELDS)
    if unknown:
        raise ValueError(f"'{key}' names unknown canonical field(s) {unknown}; known: {', '.join(sorted(FIELDS))}")
    return value


class Mapping(_Strict):
    """The keys of a mapping file (see the module docstring); unknown keys are refused."""

    layout: Literal["delimited", "fixed_width", "xml"] = "delimited"
    record: str | None = None
    delimiter: str = Field(",", min_length=1)
    quotechar: str | None = '"'
    header: bool = False
    header_prefix: str | None = None
    normalise_header: bool = False
    names: list[str] | None = None
    skip_lines: NonNegativeInt = 0
    comment_prefix: str | None = None
    encoding: str = "utf-8"
    timezone: str = "UTC"
    timestamp_format: str = "iso8601"
    timestamp_formats: dict[str, str] = {}
    duration_unit: Literal["seconds", "ms", "go", "hhmmsscc"] = "seconds"
    columns: dict[str, Source]
    optional: list[str] = []
    constants: dict[str, Any] = {}
    value_maps: dict[str, dict[Any, Any]] = {}
    derive: dict[str, str] = {}
    key: list[str | int] = Field(["carrier_call_id"], min_length=1)
    call: list[str | int] | None = Field(None, min_length=1)
    record_filter: RecordFilter | None = None
    trailer: Trailer | None = None
    checks: dict[str, str] | None = None
    billable_leg: Literal["answered_longest", "originating", "every_leg", "merged"] | None = None
    description: str | None = None

    @field_validator("timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:  # refused here, not by every file it would fail to parse
        return checks.time_zone(value)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        return checks.encoding(value)

    @field_validator("columns", "constants", "value_maps", "timestamp_formats", "derive")
    @classmethod
    def _known_fields(cls, value: dict, info) -> dict:
        return _canonical(value, info.field_name)

    @field_validator("checks")
    @classmethod
    def _severities(cls, value: dict | None) -> dict | None:
        try:  # known names and severities; the policy reads them later
            severities.resolve(value, "mapped")
        except ValueError as exc:  # pydantic names the key already
            raise ValueError(str(exc).removeprefix("checks: ")) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        if "carrier_call_id" not in self.columns:
            raise ValueError("columns must name the source of carrier_call_id")
        if "start_time" not in self.columns and "start_time" not in self.derive:
            raise ValueError("columns must name start_time, or derive it")
        for name, rule in self.derive.items():
            if rule not in DERIVATIONS.get(name, set()):
                raise ValueError(f"derive {name}: {rule!r} is not one of {sorted(DERIVATIONS.get(name, set()))}")
        if self.layout == "xml" and not self.record:
            raise ValueError("layout xml needs 'record', the element that is one CDR")
        if self.layout == "fixed_width":
            for name, source in self.columns.items():
                if not isinstance(source, Slice):
                    raise ValueError(f"fixed_width column {name} needs {{start, end}}")
        return self


def load_mapping(path: Path) -> dict:
    """Read and check a mapping file."""
    try:
        mapping = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping {path} is not valid YAML: {exc}") from None
    return check_mapping(mapping, str(path))


def check_mapping(mapping: object, where: str = "mapping") -> dict:
    """``mapping`` (the YAML document) checked against :class:`Mapping`; returned as it was,
    since the parser reads the document itself. :class:`MappingError` names ``where`` and the key."""
    if not isinstance(mapping, dict):
        raise MappingError(f"{where}: a mapping file is a YAML mapping of keys")
    try:
        Mapping.model_validate(mapping)
    except ValidationError as exc:
        raise MappingError(f"{where}: {_first_problem(exc, mapping)}") from None
    return mapping


def _first_problem(exc: ValidationError, mapping: dict) -> str:
    """One line for the first error pydantic found, in the words the mapping's author used."""
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"] if not isinstance(p, int) or len(error["loc"]) > 1)
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        unknown = sorted(set(mapping) - set(Mapping.model_fields))
        return f"unknown key(s) {unknown}; known keys: {', '.join(sorted(Mapping.model_fields))}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "literal_error":
        return f"{where} must be {message.removeprefix('Input should be ')}, got {error.get('input')!r}"
    return f"{where}: {message}" if where else message
