"""The carrier configuration file: who sends what, in which format, and where to collect it.

Operators edit one YAML file (default ``include/carriers.yaml``, or the path in
``CDRFLOW_CARRIERS_FILE``); :func:`sync` loads its carriers into the ``carriers`` table, and
the collector DAGs read each carrier's ``sources`` from it. Credentials never appear here:
a source names an Airflow connection id (``AIRFLOW_CONN_<ID>`` or any secrets backend).

Every key is documented in ``include/carriers.yaml`` itself and in the README. Unknown keys are
an error that names the key and the carrier, so that a typo never silently disables a source.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection

from cdrflow.config import settings
from cdrflow.config.errors import ConfigurationError
from cdrflow.formats import PARSERS
from cdrflow.warehouse import carriers

DEFAULT_FILE = settings.PACKAGE_DIR.parent / "carriers.yaml"
SOURCE_KINDS = ("mailbox", "sftp", "ftp", "bucket")
FILE_TYPES = tuple(PARSERS)  # the formats cdrflow can parse


@dataclass(frozen=True)
class MailboxSource:
    """An IMAP folder where the carrier's messages arrive."""

    conn_id: str  # Airflow connection of type imap (host, port, login, password; extra use_ssl)
    senders: tuple[str, ...]  # allowed From addresses; fnmatch patterns ("*@acme.example")
    folder: str = "INBOX"
    attachments: tuple[str, ...] = ("*",)  # attachment file-name patterns (fnmatch, case-insensitive)
    processed_folder: str | None = "cdrflow-processed"  # None: flag the message instead of moving it
    kind: str = "mailbox"


@dataclass(frozen=True)
class RemoteDirSource:
    """Directories on the carrier's SFTP or FTP/FTPS server."""

    kind: str  # sftp | ftp
    conn_id: str  # Airflow connection: sftp, or ftp (plain) / ftps (TLS)
    directories: tuple[str, ...]
    patterns: tuple[str, ...] = ("*",)  # file-name patterns (fnmatch)
    settle_seconds: float = 15.0  # a file whose size changes within this time is still being written
    done_marker: str | None = None  # e.g. ".done": only files with "<name>.done" beside them are taken
    after: str = "keep"  # keep | delete | move
    move_to: str | None = None  # directory for after=move


@dataclass(frozen=True)
class BucketSource:
    """An upload prefix: ``s3://bucket/prefix`` or a local directory (path or file:// URL)."""

    url: str
    conn_id: str | None = None  # Airflow aws connection for s3:// (endpoint_url for S3-compatible servers)
    patterns: tuple[str, ...] = ("*",)
    processed_prefix: str = "processed/"  # objects are moved under <url>/<processed_prefix> once registered
    kind: str = "bucket"


Source = MailboxSource | RemoteDirSource | BucketSource


@dataclass(frozen=True)
class CarrierConfig:
    carrier: carriers.Carrier
    sources: tuple[Source, ...] = field(default_factory=tuple)

    @property
    def code(self) -> str:
        return self.carrier.code


def _tuple(value: Any, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where}: {key} must be a string or a list of strings")
    return tuple(value)


def _build(cls, raw: dict, where: str, **fixed):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    values = dict(raw, **fixed)
    for f in fields(cls):
        if f.name in values and "tuple" in str(f.type):
            values[f.name] = _tuple(values[f.name], f.name, where)
    try:
        return cls(**values)
    except TypeError as exc:  # a required key is missing
        missing = [
            f.name
            for f in fields(cls)
            if f.name not in values and f.default is MISSING and f.default_factory is MISSING
        ]
        raise ConfigurationError(f"{where}: missing {', '.join(missing) or exc}") from None


def parse_source(raw: Any, where: str) -> Source:
    """One source from its YAML (or dict) form; raises ConfigurationError naming ``where``."""
    if not isinstance(raw, dict) or "kind" not in raw:
        raise ConfigurationError(f"{where}: a source is a mapping with a kind ({', '.join(SOURCE_KINDS)})")
    kind = raw["kind"]
    if kind == "mailbox":
        source = _build(MailboxSource, raw, where)
    elif kind in ("sftp", "ftp"):
        source = _build(RemoteDirSource, raw, where)
        if source.after not in ("keep", "delete", "move"):
            raise ConfigurationError(f"{where}: after must be keep, delete or move, got {source.after!r}")
        if source.after == "move" and not source.move_to:
            raise ConfigurationError(f"{where}: after: move needs move_to")
        if source.settle_seconds < 0:
            raise ConfigurationError(f"{where}: settle_seconds cannot be negative")
    elif kind == "bucket":
        source = _build(BucketSource, raw, where)
    else:
        raise ConfigurationError(f"{where}: unknown source kind {kind!r}; known: {', '.join(SOURCE_KINDS)}")
    if getattr(source, "conn_id", "") == "" or (kind == "mailbox" and not source.senders):
        raise ConfigurationError(f"{where}: {'senders' if kind == 'mailbox' else 'conn_id'} cannot be empty")
    return source


_CARRIER_KEYS = {
    "code",
    "name",
    "file_type",
    "mapping",
    "billable",
    "delivery",
    "reject_threshold",
    "timezone",
    "encoding",
    "sources",
}


def _carrier(raw: Any, index: int) -> CarrierConfig:
    if not isinstance(raw, dict) or not raw.get("code"):
        raise ConfigurationError(f"carrier #{index + 1}: every carrier needs a code")
    code = str(raw["code"])
    where = f"carrier {code}"
    unknown = sorted(set(raw) - _CARRIER_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_CARRIER_KEYS))}"
        )
    file_type = raw.get("file_type")
    if file_type not in FILE_TYPES:
        raise ConfigurationError(f"{where}: file_type must be one of {', '.join(FILE_TYPES)}, got {file_type!r}")
    if file_type == "mapped" and not raw.get("mapping"):
        raise ConfigurationError(f"{where}: file_type mapped needs a mapping file")
    delivery = raw.get("delivery", "daily")
    if delivery not in ("daily", "monthly"):
        raise ConfigurationError(f"{where}: delivery must be daily or monthly, got {delivery!r}")
    threshold = float(raw.get("reject_threshold", 0.05))
    if not 0 <= threshold <= 1:
        raise ConfigurationError(f"{where}: reject_threshold must be between 0 and 1")
    config = {k: raw[k] for k in ("timezone", "encoding") if raw.get(k)}
    carrier = carriers.Carrier(
        code=code,
        name=str(raw.get("name") or code),
        file_type=file_type,
        mapping=raw.get("mapping"),
        billable=bool(raw.get("billable", True)),
        delivery=delivery,
        reject_threshold=threshold,
        config=config,
    )
    sources = raw.get("sources") or []
    if not isinstance(sources, list):
        raise ConfigurationError(f"{where}: sources must be a list")
    return CarrierConfig(carrier, tuple(parse_source(s, f"{where}, source #{i + 1}") for i, s in enumerate(sources)))


def config_path() -> Path:
    return Path(os.environ.get("CDRFLOW_CARRIERS_FILE") or DEFAULT_FILE)


def parse(text: str, origin: str = "carrier configuration") -> list[CarrierConfig]:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("carriers", []), list):
        raise ConfigurationError(f"{origin}: expected a mapping with a list under 'carriers'")
    result = [_carrier(raw, i) for i, raw in enumerate(doc.get("carriers") or [])]
    codes = [c.code for c in result]
    if len(set(codes)) != len(codes):
        raise ConfigurationError(f"{origin}: carrier codes must be unique: {codes}")
    return result


def load(path: Path | None = None) -> list[CarrierConfig]:
    """The carriers of the configuration file (default :func:`config_path`)."""
    path = Path(path or config_path())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the carrier configuration {path}: {exc.strerror}") from None
    return parse(text, str(path))


def sync(conn: Connection, configs: list[CarrierConfig]) -> int:
    """Insert or update every configured carrier in the ``carriers`` table (inside the caller's
    transaction). Carriers that are in the table but not in the file are left alone: their files
    and calls still point at them."""
    for c in configs:
        carriers.upsert(conn, c.carrier)
    return len(configs)


def sources_of_kind(configs: list[CarrierConfig], kind: str) -> list[tuple[str, Source]]:
    """(carrier code, source) for every configured source of ``kind``, in file order."""
    if kind not in SOURCE_KINDS:
        raise ConfigurationError(f"unknown source kind {kind!r}")
    return [(c.code, s) for c in configs for s in c.sources if s.kind == kind]
