"""What a failed check costs a row: reject it, flag it, or fail the file (a carrier's policy).

Great Expectations says which rows failed which checks (:mod:`cdrflow.validation.suites`);
the policy says what that means. Real traffic has rows that are odd but not wrong (a ``Local/``
channel dialling extension ``s``, a SIP endpoint called ``client1``): quarantining them loses
calls and fails whole files, so number shapes and unknown values are flagged by default and
load with the failed checks' names in ``calls.quality``. Structure (ids, times, durations, the
record key) still rejects. The defaults are in the suite files; a mapping's ``checks:``
overrides them and a carrier's ``checks:`` overrides both (see :mod:`cdrflow.config.severities`).

Only rows that failed something are looked at here (in Python): a clean row costs nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache

from cdrflow.config.errors import ConfigurationError
from cdrflow.config.severities import default_severities, resolve
from cdrflow.validation.suites import ValidationSummary


@dataclass(frozen=True)
class Policy:
    """Check name -> severity (``reject``, ``flag`` or ``fail``) for one carrier's files."""

    severities: tuple[tuple[str, str], ...]

    def label(self, summary: list[ValidationSummary]) -> list[ValidationSummary]:
        """``summary`` with each check's severity (what the log and the counts show)."""
        table = dict(self.severities)
        return [replace(s, severity=table.get(s.expectation, "reject")) for s in summary]

    def split(self, bad: dict[int, list[str]]) -> tuple[dict[int, list[str]], dict[int, str]]:
        """The failing rows of ``bad`` (row -> failed checks): those to quarantine (every check
        they failed is their reason; a ``fail`` check quarantines its rows too, the file then
        fails), and those that load flagged, with their ``quality`` (a JSON array of the
        checks' names; one encoding per distinct set of names)."""
        table = dict(self.severities)
        rejected: dict[int, list[str]] = {}
        flagged: dict[int, str] = {}
        texts: dict[tuple[str, ...], str] = {}
        for row, names in bad.items():
            if all(table.get(n, "reject") == "flag" for n in names):
                key = tuple(names)
                if key not in texts:
                    texts[key] = json.dumps(names)
                flagged[row] = texts[key]
            else:
                rejected[row] = names
        return rejected, flagged


def failing_the_file(summary: list[ValidationSummary]) -> dict[str, int]:
    """The ``fail`` checks that rows failed (name -> rows): any makes the file fail."""
    return {s.expectation: s.unexpected_count for s in summary if s.severity == "fail" and s.unexpected_count}


@lru_cache(maxsize=64)
def _policy(file_type: str, mapping_checks: str, carrier_checks: str) -> Policy:
    table = dict(default_severities(file_type))
    table.update(resolve(json.loads(mapping_checks), file_type))
    table.update(resolve(json.loads(carrier_checks), file_type))
    return Policy(tuple(table.items()))


def policy_for(
    file_type: str, mapping: dict | None = None, carrier_checks: dict | None = None, *, where: str = "carrier"
) -> Policy:
    """The policy for files of ``file_type``: the suite's defaults, then the mapping's
    ``checks:``, then the carrier's (``carriers.config['checks']``). Both were checked when
    their files were read; a mistake that reached the warehouse some other way is still a
    one-line :class:`ConfigurationError` naming ``where``."""
    try:
        return _policy(
            file_type,
            json.dumps((mapping or {}).get("checks"), sort_keys=True),
            json.dumps(carrier_checks, sort_keys=True),
        )
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
