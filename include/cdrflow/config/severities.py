"""What a failed check does to its row: the severities, the checks a file type has, overrides.

Every expectation of the validation suites has a severity:

- ``reject``: the row goes to the quarantine (``rejected_rows``) and counts against the
  carrier's ``reject_threshold``;
- ``flag``: the row loads and carries the names of the checks it failed in ``calls.quality``;
- ``fail``: any row failing it fails the whole file (the row is quarantined too).

The defaults are the ``severity`` of each entry in the suite files
(``validation/expectations/*.json``); a mapping's ``checks:`` overrides them, a carrier's
``checks:`` overrides both. This module lives in ``config`` (the lowest layer, reading the
suite files as data) because the carrier file and the mapping files are checked when they are
read, never later in a load: an unknown check name or severity is a one-line configuration
error there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache

from cdrflow.config import settings

SEVERITIES = ("reject", "flag", "fail")
SUITES = settings.PACKAGE_DIR / "validation" / "expectations"


def suite_config(file_type: str) -> list[dict]:
    """The expectations for ``file_type``: the canonical call plus the format's own."""
    entries = json.loads((SUITES / "canonical_call.json").read_text())["expectations"]
    own = SUITES / f"{file_type}.json"
    if own.exists():
        entries = entries + json.loads(own.read_text())["expectations"]
    return entries


def expectation_name(entry: dict) -> str:
    """A check's name, as rows and logs show it: ``expect_column_values_to_match_regex(callee_number)``."""
    kwargs = entry["kwargs"]
    columns = kwargs.get("column") or ",".join(v for k, v in kwargs.items() if k.startswith("column_"))
    return f"{entry['type']}({columns})"


@lru_cache(maxsize=32)
def default_severities(file_type: str) -> dict[str, str]:
    """Check name -> its default severity (``reject`` where the suite names none)."""
    return {expectation_name(e): e.get("severity", "reject") for e in suite_config(file_type)}


def resolve(overrides: object, file_type: str) -> dict[str, str]:
    """``overrides`` (a ``checks:`` mapping from a carrier or mapping file) with every name in
    full. A name is a check's full name or, when it is not ambiguous, what is between its
    parentheses (``callee_number`` for ``expect_column_values_to_match_regex(callee_number)``):
    operators think in columns. Raises ValueError naming the key (the caller adds whose file)."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ValueError(f"checks: a mapping of check name to severity ({', '.join(SEVERITIES)})")
    known = default_severities(file_type)
    short: dict[str, list[str]] = {}
    for name in known:
        short.setdefault(name[name.index("(") + 1 : -1], []).append(name)
    out: dict[str, str] = {}
    for key, severity in overrides.items():
        if severity not in SEVERITIES:
            raise ValueError(f"checks: {key}: unknown severity {severity!r}; known: {', '.join(SEVERITIES)}")
        if key in known:
            out[key] = severity
        elif len(short.get(str(key), [])) == 1:
            out[short[str(key)][0]] = severity
        elif str(key) in short:
            raise ValueError(f"checks: {key} is ambiguous; name one of {', '.join(short[str(key)])}")
        else:
            raise ValueError(f"checks: unknown check {key!r} for {file_type}; known: {', '.join(known)}")
    return out
