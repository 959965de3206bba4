"""The carrier configuration file: who sends what, in which format, and where to collect it.

Operators edit one YAML file (default ``include/carriers.yaml``, or the path in
``CDRFLOW_CARRIERS_FILE``); :func:`cdrflow.warehouse.carriers.sync` loads its carriers into the
``carriers`` table, and the collector DAGs read each carrier's ``sources`` from it. Credentials
never appear here: a source names an Airflow connection id (``AIRFLOW_CONN_<ID>`` or any
secrets backend).

Every key is documented in ``include/carriers.yaml`` itself and in the README. The schema is a
set of pydantic models; every mistake (an unknown key, a time zone or character set Python does
not know, a code the carriers table would refuse) is a :class:`ConfigurationError` of one line
that names the carrier and the key, raised when the file is read: at ``cdrflow carriers sync``
and at every collector run, never later in a load.
"""

from __future__ import annotations

import os
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from cdrflow.config import checks, settings, severities
from cdrflow.config import checks as value_checks  # CarrierEntry has a field named checks
from cdrflow.config.errors import ConfigurationError
from cdrflow.config.vocabulary import (
    AFTER_ACTIONS,
    BILLABLE_LEG_RULES,
    CARRIER_CODE_PATTERN,
    CARRIER_CODE_RULE,
    DELIVERIES,
    FILE_TYPES,
    SOURCE_KINDS,
    one_of,
)

DEFAULT_FILE = settings.PACKAGE_DIR.parent / "carriers.yaml"


@dataclass(frozen=True)
class Carrier:
    """A row of the ``carriers`` table: who sends files, in which format, billed or not."""

    code: str
    name: str
    file_type: str | None = None
    mapping: str | None = None
    billable: bool = True
    delivery: str = "daily"  # or "monthly"
    reject_threshold: float = 0.05
    config: dict[str, Any] = field(default_factory=dict)  # timezone, encoding, deadline, dial_plan, buy_deck, ...
    account_id: str | None = None  # the account that sees its files in the CDR Files API (key account)


# --- field rules -----------------------------------------------------------------------------


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def _word(words, what: str):
    def check(value: str) -> str:
        if value not in words:
            raise ValueError(f"unknown {what} {value!r}; known: {one_of(words)}")
        return value

    return AfterValidator(check)


def _text_id(value: Any) -> Any:
    """YAML reads ``account: 1001`` as a number; an account id is text (as in the account file)."""
    return str(value) if type(value) is int else value


def _clock(value: Any) -> Any:
    """A deadline is ``HH:MM`` (24 hours), written quoted: YAML reads an unquoted ``10:30`` as the
    number 630 (base 60), which is refused here rather than guessed."""
    if not isinstance(value, str):
        raise ValueError(f'a time of day in quotes, e.g. deadline: "09:00" (YAML read {value!r})')
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
    if not match:
        raise ValueError(f'{value!r} is not a time of day HH:MM (00:00 to 23:59), e.g. "09:00"')
    return f"{int(match[1]):02d}:{match[2]}"


def _code(value: str) -> str:
    if not re.match(CARRIER_CODE_PATTERN, value):
        raise ValueError(f"{value!r} is not a carrier code ({CARRIER_CODE_RULE})")
    return value


Text = Annotated[str, Field(min_length=1)]
Strings = Annotated[tuple[Text, ...], BeforeValidator(_one_or_many)]
Required = Annotated[Strings, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- sources ---------------------------------------------------------------------------------


class MailboxSource(_Model):
    """An IMAP folder where the carrier's messages arrive."""

    kind: Literal["mailbox"] = "mailbox"
    conn_id: Text  # Airflow connection of type imap (host, port, login, password; extra use_ssl)
    senders: Required  # allowed From addresses; fnmatch patterns ("*@acme.example")
    folder: Text = "INBOX"
    attachments: Required = ("*",)  # attachment file-name patterns (fnmatch, case-insensitive)
    processed_folder: Text | None = "cdrflow-processed"  # None: flag the message instead of moving it


class RemoteDirSource(_Model):
    """Directories on the carrier's SFTP or FTP/FTPS server."""

    kind: Literal["sftp", "ftp"]
    conn_id: Text  # Airflow connection: sftp, or ftp (plain) / ftps (TLS)
    directories: Required
    patterns: Required = ("*",)  # file-name patterns (fnmatch)
    settle_seconds: float = Field(15.0, ge=0)  # a file whose size changes within this time is still being written
    done_marker: Text | None = None  # e.g. ".done": only files with "<name>.done" beside them are taken
    after: Annotated[str, _word(AFTER_ACTIONS, "after action")] = "keep"
    move_to: Text | None = None  # directory for after=move

    @model_validator(mode="after")
    def _move_needs_a_directory(self) -> RemoteDirSource:
        if self.after == "move" and not self.move_to:
            raise ValueError("after: move needs move_to")
        return self


class BucketSource(_Model):
    """An upload prefix: ``s3://bucket/prefix`` or a local directory (path or file:// URL)."""

    kind: Literal["bucket"] = "bucket"
    url: Text
    conn_id: Text | None = None  # Airflow aws connection for s3:// (endpoint_url for S3-compatible servers)
    patterns: Required = ("*",)
    processed_prefix: Text = "processed/"  # objects are moved under <url>/<processed_prefix> once registered


Source = MailboxSource | RemoteDirSource | BucketSource
SOURCE_MODELS: dict[str, type[Source]] = {
    "mailbox": MailboxSource,
    "sftp": RemoteDirSource,
    "ftp": RemoteDirSource,
    "bucket": BucketSource,
}


# --- carriers --------------------------------------------------------------------------------

Prefix = Annotated[str, AfterValidator(checks.digits)]  # a string: YAML reads 00 as 0 and 011 as 9
NationalPrefix = Annotated[
    str, BeforeValidator(lambda v: str(v) if type(v) is int and 0 <= v <= 9 else v), AfterValidator(checks.digits)
]


class DialPlanEntry(_Model):
    """How the carrier's switches write numbers: what turns ``89161234567`` into
    ``+79161234567`` (:mod:`cdrflow.formats.numbering`). Prefixes default to the country's own,
    from phonenumbers' metadata."""

    country: Annotated[str, AfterValidator(checks.country)]  # ISO 3166 region: RU, DE, US, GB
    national_prefix: NationalPrefix | None = None  # trunk prefix: 8 (RU), 0 (DE, GB), 1 (US)
    # read as international besides the country's own (810 RU, 00 DE, 011 US) and '+'
    international_prefixes: Annotated[tuple[Prefix, ...], BeforeValidator(_one_or_many)] | None = None
    extension_digits: int = Field(5, ge=0, le=9)  # internal extensions have up to this many digits


class CarrierEntry(_Model):
    """One carrier as the file (or ``cdrflow carrier add``) spells it."""

    code: Annotated[str, AfterValidator(_code)]
    name: Text | None = None
    file_type: Annotated[str, _word(FILE_TYPES, "file type")]
    mapping: Text | None = None
    billable: bool = True
    delivery: Annotated[str, _word(DELIVERIES, "delivery")] = "daily"
    reject_threshold: float = Field(0.05, ge=0, le=1)
    timezone: Annotated[str, AfterValidator(value_checks.time_zone)] | None = None
    # a daily file is due by this time of day, in `timezone`: later without one, operators are notified
    deadline: Annotated[str, BeforeValidator(_clock)] | None = None
    encoding: Annotated[str, AfterValidator(value_checks.encoding)] | None = None
    billable_leg: Annotated[str, _word(BILLABLE_LEG_RULES, "billable_leg rule")] | None = None  # default: the format's
    dial_plan: DialPlanEntry | None = None
    checks: dict[str, str] | None = None  # check name (or its column) -> reject | flag | fail
    buy_deck: Text | None = None  # the rate deck (kind buy) this carrier charges us; billruns add a buy charge
    # the account (accounts.yaml account_id) that sees this carrier's files in the CDR Files API
    # and may upload files for it; none: operators only
    account: Annotated[Text, BeforeValidator(_text_id)] | None = None
    sources: list[Any] | None = None  # each checked by parse_source, which names its position

    @model_validator(mode="after")
    def _mapped_needs_a_mapping(self) -> CarrierEntry:
        if self.file_type == "mapped" and not self.mapping:
            raise ValueError("file_type mapped needs a mapping file (key mapping)")
        if self.mapping:
            path = Path(self.mapping)
            if not (path if path.is_absolute() else settings.REPO_DIR / path).is_file():
                raise ValueError(f"mapping: no such mapping file {self.mapping!r}")
        if self.deadline and self.delivery != "daily":
            raise ValueError("deadline: only for delivery daily (a file due every day by that time)")
        if self.checks:  # names in full from here on (the warehouse and the logs show full names)
            object.__setattr__(self, "checks", severities.resolve(self.checks, self.file_type))
        return self

    def _mapping_billable_leg(self) -> str | None:
        """The mapping file's own ``billable_leg`` (read as plain YAML: the mapping's schema lives
        with the parsers, a layer above; it checks the value when the mapping is loaded)."""
        if not self.mapping:
            return None
        path = Path(self.mapping)
        try:
            declared = yaml.safe_load((path if path.is_absolute() else settings.REPO_DIR / path).read_text())
        except (OSError, yaml.YAMLError):
            return None  # the mapping's own checks say what is wrong with it, at load
        leg = declared.get("billable_leg") if isinstance(declared, dict) else None
        return leg if leg in BILLABLE_LEG_RULES else None

    def carrier(self) -> Carrier:
        return Carrier(
            code=self.code,
            name=self.name or self.code,
            file_type=self.file_type,
            mapping=self.mapping,
            billable=self.billable,
            delivery=self.delivery,
            reject_threshold=self.reject_threshold,
            config={
                **{k: getattr(self, k) for k in ("timezone", "encoding", "deadline") if getattr(self, k)},
                **({"billable_leg": leg} if (leg := self.billable_leg or self._mapping_billable_leg()) else {}),
                **({"dial_plan": self.dial_plan.model_dump(exclude_none=True)} if self.dial_plan else {}),
                **({"checks": dict(self.checks)} if self.checks else {}),
                **({"buy_deck": self.buy_deck} if self.buy_deck else {}),
            },
            account_id=self.account,
        )


@dataclass(frozen=True)
class CarrierConfig:
    carrier: Carrier
    sources: tuple[Source, ...] = field(default_factory=tuple)

    @property
    def code(self) -> str:
        return self.carrier.code


_NESTED: dict[str, type[BaseModel]] = {"dial_plan": DialPlanEntry}


def _problem(exc: ValidationError, model: type[BaseModel], where: str) -> ConfigurationError:
    """pydantic's report as one line naming ``where`` and the key."""
    errors = exc.errors()
    unknown = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        inner = [e["loc"][:-1] for e in errors if e["type"] == "extra_forbidden"][0]
        if inner and inner[0] in _NESTED:  # a key inside dial_plan: name the section and its keys
            where, model = f"{where}: {inner[0]}", _NESTED[str(inner[0])]
        allowed = ", ".join(sorted(model.model_fields))
        return ConfigurationError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
    missing = [".".join(str(p) for p in e["loc"]) for e in errors if e["type"] == "missing"]
    if missing:
        return ConfigurationError(f"{where}: missing {', '.join(missing)}")
    first = errors[0]
    if first["type"] == "value_error":
        message = str(first["ctx"]["error"])
    elif first["type"] in ("too_short", "string_too_short"):
        message = "cannot be empty"
    else:
        message = f"{first['msg'][:1].lower()}{first['msg'][1:]}, got {reprlib.repr(first['input'])}"
    key = ".".join(str(p) for p in first["loc"])
    text = f"{where}: {key}: {message}" if key and not message.startswith(f"{key}:") else f"{where}: {message}"
    return ConfigurationError(" ".join(text.split()))


def parse_source(raw: Any, where: str) -> Source:
    """One source from its YAML (or dict) form; raises ConfigurationError naming ``where``."""
    if not isinstance(raw, dict) or "kind" not in raw:
        raise ConfigurationError(f"{where}: a source is a mapping with a kind ({one_of(SOURCE_KINDS)})")
    model = SOURCE_MODELS.get(raw["kind"])
    if model is None:
        raise ConfigurationError(f"{where}: unknown source kind {raw['kind']!r}; known: {one_of(SOURCE_KINDS)}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _problem(exc, model, where) from None


def parse_carrier(raw: Any, where: str | None = None) -> CarrierConfig:
    """One carrier entry (a dict) with its sources; ``where`` defaults to ``carrier CODE``."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where or 'carrier'}: a carrier is a mapping of keys (code, file_type, ...)")
    code = raw.get("code")
    where = f"carrier {code}" if code not in (None, "") else (where or "carrier")
    try:
        entry = CarrierEntry.model_validate(raw)
    except ValidationError as exc:
        raise _problem(exc, CarrierEntry, where) from None
    sources = tuple(parse_source(s, f"{where}, source #{i + 1}") for i, s in enumerate(entry.sources or []))
    return CarrierConfig(entry.carrier(), sources)


def config_path() -> Path:
    return Path(os.environ.get("CDRFLOW_CARRIERS_FILE") or DEFAULT_FILE)


def yaml_list(text: str, origin: str, key: str) -> list:
    """The list under ``key`` of a configuration file's YAML text (the carrier and account files
    share this shape), or a one-line :class:`ConfigurationError` naming ``origin``."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{origin}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key) or [], list):
        raise ConfigurationError(f"{origin}: expected a mapping with a list under '{key}'")
    return doc.get(key) or []


def parse(text: str, origin: str = "carrier configuration") -> list[CarrierConfig]:
    result = [parse_carrier(raw, f"carrier #{i + 1}") for i, raw in enumerate(yaml_list(text, origin, "carriers"))]
    codes = [c.code for c in result]
    if len(set(codes)) != len(codes):
        raise ConfigurationError(f"{origin}: carrier codes must be unique: {', '.join(codes)}")
    return result


def load(path: Path | None = None) -> list[CarrierConfig]:
    """The carriers of the configuration file (default :func:`config_path`)."""
    path = Path(path or config_path())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the carrier configuration {path}: {exc.strerror}") from None
    return parse(text, str(path))


def sources_of_kind(configs: list[CarrierConfig], kind: str) -> list[tuple[str, Source]]:
    """(carrier code, source) for every configured source of ``kind``, in file order."""
    if kind not in SOURCE_KINDS:
        raise ConfigurationError(f"unknown source kind {kind!r}; known: {one_of(SOURCE_KINDS)}")
    return [(c.code, s) for c in configs for s in c.sources if s.kind == kind]
