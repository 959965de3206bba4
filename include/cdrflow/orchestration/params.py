"""What operators type into cdrflow's trigger forms, and the forms themselves.

Airflow 3's form picks a widget from each param's JSON schema: a list param is a JSON editor that
reformats on every keystroke, a param whose type does not include ``null`` gets a red star
(required), ``enum`` is a drop-down, ``format: date`` a date picker, ``examples`` a text field
with suggestions. So ids are one text field (``3, 4, 10-12``) parsed here, every optional param
includes ``null``, and carriers and accounts are drop-downs built from the carrier and account
files when the DAG file is parsed (a file that cannot be read gives a free text field instead:
the task then names what is unknown).
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any

from airflow.sdk import Param

from cdrflow.config.errors import CdrflowError, one_line

log = logging.getLogger(__name__)

MAX_IDS = 100_000  # one form names at most this many files (a range typed by mistake, 1-99999999)
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_ID_HELP = "a file id (a positive whole number) or a range like 10-12"


def file_id_list(value: object, name: str = "file ids") -> list[int]:
    """File ids from ``"3, 4, 10-12"`` (commas, semicolons or spaces between them), ``[3, 4]``,
    ``["3", "10-12"]``, ``3`` or nothing, in order, each once. Anything else is a one-line error
    naming the param and the bad value."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out: dict[int, None] = {}
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise CdrflowError(f"{name}: {item!r} is not {_ID_HELP}")
        text = re.sub(r"\s*-\s*", "-", str(item).strip())  # "10 - 12" is a range too
        for part in (p for p in re.split(r"[\s,;]+", text) if p):
            out.update(dict.fromkeys(_ids_of(part, name)))
            if len(out) > MAX_IDS:
                raise CdrflowError(f"{name}: more than {MAX_IDS:,} file ids; name fewer (or use a day or a carrier)")
    return list(out)


def _ids_of(part: str, name: str) -> range | list[int]:
    if part.isdigit() and int(part) >= 1:
        return [int(part)]
    if m := _RANGE.match(part):
        first, last = int(m[1]), int(m[2])
        if first < 1 or last < first:
            raise CdrflowError(f"{name}: {part!r} is not a range of file ids (write the smaller id first, from 1)")
        if last - first >= MAX_IDS:
            raise CdrflowError(f"{name}: {part!r} names more than {MAX_IDS:,} file ids")
        return range(first, last + 1)
    raise CdrflowError(f"{name}: {part!r} is not {_ID_HELP}")


def day_value(value: object, name: str = "day") -> date | None:
    """A day from ``2026-11-01`` (or a date); empty: None. Anything else is a one-line error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise CdrflowError(f"{name}: {value!r} is not a day (write it as 2026-11-01)") from None


def month_value(value: object, name: str = "period") -> str | None:
    """A month ``2026-11`` from ``2026-11``, ``2026-11-17`` or a date; empty: None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        return text
    day = day_value(text, name)
    return f"{day:%Y-%m}" if day else None


# --- choices read from the configuration files when a DAG file is parsed ------------------------


def carrier_choices() -> dict[str, str] | None:
    """Carrier code -> ``code: name`` from the carrier file (``CDRFLOW_CARRIERS_FILE`` or
    ``include/carriers.yaml``); None when it cannot be read (the form falls back to text)."""
    from cdrflow.config import carrier_file

    try:
        configs = carrier_file.load()
    except CdrflowError as exc:
        log.warning("carrier choices: %s; the forms take a typed carrier code", one_line(exc))
        return None
    return {c.code: c.code if c.carrier.name == c.code else f"{c.code}: {c.carrier.name}" for c in configs} or None


def account_choices(cycle: str | None = None) -> dict[str, str] | None:
    """Account id -> ``id: name`` from the account file (``CDRFLOW_ACCOUNTS_FILE`` or
    ``include/accounts.yaml``), only those billed on ``cycle`` when given; None when it cannot be
    read or lists none."""
    from cdrflow.config import account_file

    try:
        accounts = account_file.load()
    except CdrflowError as exc:
        log.warning("account choices: %s; the forms take a typed account id", one_line(exc))
        return None
    return {a.account_id: f"{a.account_id}: {a.name}" for a in accounts if cycle in (None, a.cycle)} or None


# --- the params ---------------------------------------------------------------------------------


def file_ids_param(title: str, description: str) -> Param:
    """Optional file ids typed as ``3, 4, 10-12``."""
    return Param(None, type=["null", "string"], title=title, description=f"{description} (e.g. 3, 4, 10-12)")


def choice_param(
    choices: dict[str, str] | None, *, title: str, description: str, empty: str | None, what: str
) -> Param:
    """A drop-down of ``choices`` (value -> label). ``empty``: the label of leaving it empty (the
    param is then optional); None: a value is required. Without choices: a text field."""
    schema: dict[str, Any] = {"title": title}
    if choices is None:
        schema["description"] = f"{description} ({what}; the configuration file could not be read: type it)"
        if empty is None:
            return Param(type="string", minLength=1, **schema)
        return Param(None, type=["null", "string"], **schema)
    schema["description"] = description
    if empty is None:
        return Param(type="string", enum=list(choices), values_display=choices, **schema)
    return Param(
        None,
        type=["null", "string"],
        enum=[None, *choices],
        values_display={"null": empty, **choices},
        **schema,
    )


def carrier_param(*, required: bool = False, description: str | None = None) -> Param:
    """A carrier from the carrier file; optional (empty: every carrier) unless ``required``."""
    return choice_param(
        carrier_choices(),
        title="Carrier" if required else "Only this carrier",
        description=description or ("The carrier of the files" if required else "Empty: every carrier"),
        empty=None if required else "(every carrier)",
        what="a carrier code",
    )


def day_param(title: str, description: str) -> Param:
    """An optional day, with a date picker."""
    return Param(None, type=["null", "string"], format="date", title=title, description=description)


def account_param(cycle: str) -> Param:
    """An account billed on ``cycle`` from the account file; empty: every such account."""
    return choice_param(
        account_choices(cycle),
        title="Only this account",
        description=f"An account billed {cycle}; empty: every {cycle} account and the calls of no account",
        empty=f"(every {cycle} account)",
        what="an account id",
    )


def account_param_all() -> Param:
    """An account of either cycle from the account file; empty: every account."""
    return choice_param(
        account_choices(),
        title="Only this account",
        description="Only this account's charges; empty: every account",
        empty="(every account)",
        what="an account id",
    )


def month_param(title: str, description: str, recent: list[str]) -> Param:
    """An optional month, typed ``2026-11`` (or any day of it), ``recent`` months suggested."""
    return Param(
        None,
        type=["null", "string"],
        pattern=r"^\d{4}-(0[1-9]|1[0-2])(-\d{2})?$",
        examples=recent,
        title=title,
        description=description,
    )
