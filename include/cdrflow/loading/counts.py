"""What became of every record of a file, in words: nothing disappears without a count.

One reading, everywhere (``cdrflow parse``, the processing log, the task log)::

    records: 20 read = 16 loaded + 1 flagged + 2 rejected + 1 repeats

``loaded`` are calls loaded clean, ``flagged`` calls loaded with quality flags (so the file's
``calls_loaded`` is loaded + flagged, and ``calls_flagged`` the second term), ``rejected`` rows
in the quarantine, ``repeats`` records that repeat an earlier one (in the file or in another
file). The four are disjoint, so the equation is exact; a file that failed adds the calls it
would have loaded as ``not loaded``. Then the checks that failed most, and each repeat with the
line it repeats (the first :data:`SHOWN`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

SHOWN = 20  # repeats listed by line; the rest are counted
TOP = 10  # failing checks listed


@dataclass
class Counts:
    read: int = 0
    loaded: int = 0  # every call loaded, flagged ones included (calls_loaded)
    flagged: int = 0
    rejected: int = 0
    repeats: int = 0
    not_loaded: int = 0  # calls a failed (or refused) load would have kept
    checks: Counter = field(default_factory=Counter)  # check or parse reason -> rows
    severities: dict[str, str] = field(default_factory=dict)  # check -> severity
    repeat_lines: list[tuple[int, int | None, int]] = field(default_factory=list)  # line, file (None: this), line

    def add_summary(self, summary) -> None:
        """The failed checks of a (merged) validation summary."""
        for s in summary:
            if s.unexpected_count:
                self.checks[s.expectation] += s.unexpected_count
                self.severities[s.expectation] = s.severity

    def add_rejected(self, reasons: Iterable[list[str]]) -> None:
        """Parse problems of quarantined rows, by kind (``parse:end_time``); their checks are
        in the summary already."""
        for row in reasons:
            for reason in row:
                if reason.startswith("parse:"):
                    self.checks[":".join(reason.split(":")[:2])] += 1

    def add_parse_flags(self, qualities: Iterable[str]) -> None:
        """Parse flags of loaded rows (``parse:encoding``: a line read as Latin-1), by kind; the
        checks' flags are in the summary already. ``qualities``: the ``quality`` texts of the
        flagged rows (few)."""
        for text in qualities:
            if '"parse:' in text:
                for reason in json.loads(text):
                    if reason.startswith("parse:"):
                        kind = ":".join(reason.split(":")[:2])
                        self.checks[kind] += 1
                        self.severities[kind] = "flag"

    def equation(self) -> str:
        text = (
            f"records: {self.read} read = {self.loaded - self.flagged} loaded + {self.flagged} flagged + "
            f"{self.rejected} rejected + {self.repeats} repeats"
        )
        if self.not_loaded:
            text += f" + {self.not_loaded} not loaded"
        missing = self.read - (self.loaded + self.rejected + self.repeats + self.not_loaded)
        return text + (f" (does not add up: {missing} unaccounted)" if missing else "")

    def top_checks(self) -> str:
        if not self.checks:
            return ""
        top = self.checks.most_common(TOP)
        more = len(self.checks) - len(top)
        return (
            "top failing checks: "
            + "; ".join(f"{name} ({self.severities.get(name, 'reject')}) {n}" for name, n in top)
            + (f"; and {more} more" if more > 0 else "")
        )

    def repeats_listed(self) -> str:
        if not self.repeats:
            return ""
        shown = sorted(self.repeat_lines, key=lambda r: r[0])[:SHOWN]
        words = [
            f"line {n} repeats line {m}" if f is None else f"line {n} repeats file {f} line {m}" for n, f, m in shown
        ]
        more = self.repeats - len(shown)
        return "repeats: " + "; ".join(words) + (f"; and {more} more" if more > 0 else "")

    def lines(self) -> list[str]:
        """The equation, the top failing checks and the repeats, as lines (empty ones left out)."""
        return [t for t in (self.equation(), self.top_checks(), self.repeats_listed()) if t]
