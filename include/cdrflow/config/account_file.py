"""The account configuration file: who pays what (issue 11, billing).

Operators edit one YAML file (default ``include/accounts.yaml``, or the path in
``CDRFLOW_ACCOUNTS_FILE``); :func:`cdrflow.warehouse.accounts.sync` loads its accounts into the
``accounts`` table, which the billing runs read. An account is the ``account_id`` of calls; it
has a sell deck (the price list it pays), a billing cycle (daily or monthly), a time zone (its
days and months start at midnight there), a currency and a billing group.

Every key is documented in ``include/accounts.yaml`` itself and in the README ("Billing runs").
Every mistake is a :class:`ConfigurationError` of one line naming the account and the key, raised
when the file is read (at ``cdrflow accounts sync``), never later in a billrun.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cdrflow.config import settings
from cdrflow.config.carrier_file import _problem, yaml_list
from cdrflow.config.errors import ConfigurationError
from cdrflow.config.vocabulary import one_of

DEFAULT_FILE = settings.PACKAGE_DIR.parent / "accounts.yaml"
CYCLES: tuple[str, ...] = ("daily", "monthly")


@dataclass(frozen=True)
class Account:
    """A row of the ``accounts`` table."""

    account_id: str
    name: str
    sell_deck: str
    cycle: str = "monthly"  # CYCLES
    timezone: str = "UTC"  # IANA name: the account's days and months start at midnight there
    currency: str = "USD"  # ISO 4217: what it is invoiced in (its sell deck's currency)
    billing_group: str | None = None


def _text_id(value: Any) -> Any:
    """YAML reads ``account_id: 1001`` as a number; an account id is text."""
    return str(value) if type(value) is int else value


def _cycle(value: str) -> str:
    if value not in CYCLES:
        raise ValueError(f"unknown cycle {value!r}; known: {one_of(CYCLES)}")
    return value


def _iana_zone(value: str) -> str:
    """An IANA zone name (``Europe/Berlin``, ``UTC``): fixed offsets are refused, PostgreSQL reads
    ``+02:00`` in ``AT TIME ZONE`` as POSIX (the other way round)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {value!r}: an IANA name such as Europe/Berlin or UTC") from None
    return value


def _currency(value: str) -> str:
    if not re.match(r"^[A-Z]{3}$", value):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (three capital letters, e.g. EUR)")
    return value


Text = Annotated[str, Field(min_length=1)]


class AccountEntry(BaseModel):
    """One account as the file spells it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: Annotated[str, BeforeValidator(_text_id), Field(min_length=1)]
    name: Text | None = None
    sell_deck: Text
    cycle: Annotated[str, AfterValidator(_cycle)] = "monthly"
    timezone: Annotated[str, AfterValidator(_iana_zone)] = "UTC"
    currency: Annotated[str, AfterValidator(_currency)]
    billing_group: Annotated[str, BeforeValidator(_text_id), Field(min_length=1)] | None = None

    def account(self) -> Account:
        return Account(
            account_id=self.account_id,
            name=self.name or self.account_id,
            sell_deck=self.sell_deck,
            cycle=self.cycle,
            timezone=self.timezone,
            currency=self.currency,
            billing_group=self.billing_group,
        )


def parse_account(raw: Any, where: str = "account") -> Account:
    """One account entry (a dict); errors name ``account ID`` (or ``where`` without an id)."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: an account is a mapping of keys (account_id, sell_deck, ...)")
    account_id = raw.get("account_id")
    where = f"account {account_id}" if account_id not in (None, "") else where
    try:
        return AccountEntry.model_validate(raw).account()
    except ValidationError as exc:
        raise _problem(exc, AccountEntry, where) from None


def config_path() -> Path:
    return Path(os.environ.get("CDRFLOW_ACCOUNTS_FILE") or DEFAULT_FILE)


def parse(text: str, origin: str = "account configuration") -> list[Account]:
    result = [parse_account(raw, f"account #{i + 1}") for i, raw in enumerate(yaml_list(text, origin, "accounts"))]
    seen: set[str] = set()
    for a in result:
        if a.account_id in seen:
            raise ConfigurationError(f"{origin}: account {a.account_id} is configured twice")
        seen.add(a.account_id)
    return result


def load(path: Path | None = None) -> list[Account]:
    """The accounts of the configuration file (default :func:`config_path`)."""
    path = Path(path or config_path())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the account configuration {path}: {exc.strerror}") from None
    return parse(text, str(path))
