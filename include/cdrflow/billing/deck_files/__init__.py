"""Importers of rate deck files: one module per format, each turning files into
:class:`~cdrflow.billing.model.DeckVersion` objects, or refusing them whole.

- :mod:`.cdrflow_csv`: cdrflow's own CSV (one file, one deck)
- :mod:`.cgrates`: a CGRateS tariff plan folder (each ``RatingPlans.csv`` id is a deck)
- :mod:`.cdrtool`: CDRTool's rating tables (``destinations.csv`` and ``rates.csv``)

What they share lives here: the problem list (a bad deck is refused whole, one line per problem
with its file and line number, the first :data:`MAX_PROBLEMS` shown) and the parsing of money and
whole seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from cdrflow.billing.model import DeckVersion
from cdrflow.config.errors import CdrflowError

MAX_PROBLEMS = 20
DIGITS = re.compile(r"^[0-9]+$")


class DeckRefused(CdrflowError):
    """A deck file with problems: nothing of it was imported. ``problems``: one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        self.lines = shown + ([f"... and {more} more problem(s)"] if more else [])
        super().__init__(f"deck refused ({len(problems)} problem(s)): {shown[0] if shown else ''}")


@dataclass
class Imported:
    """What an importer read: the versions (one per deck) and notes on what it left out."""

    versions: list[DeckVersion]
    notes: list[str] = field(default_factory=list)


class Problems:
    """Collects problems while a file is read; :meth:`check` raises them all at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def check(self) -> None:
        if self.items:
            raise DeckRefused(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


def money(value: str, what: str, where: str, problems: Problems, *, blank: Decimal | None = None) -> Decimal | None:
    """A non-negative decimal amount (a price or fee), or None after recording a problem."""
    text = value.strip()
    if not text:
        if blank is not None:
            return blank
        problems.add(where, f"{what} is empty")
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        problems.add(where, f"{what} {text!r} is not a number")
        return None
    if not amount.is_finite():
        problems.add(where, f"{what} {text!r} is not a number")
        return None
    if amount < 0:
        problems.add(where, f"{what} {text} is negative")
        return None
    return amount


def whole(
    value: str, what: str, where: str, problems: Problems, *, blank: int | None = None, positive=False
) -> int | None:
    """A non-negative whole number of seconds (positive when ``positive``), or None after a problem."""
    text = value.strip()
    if not text and blank is not None:
        return blank
    if not text.isdigit():
        problems.add(where, f"{what} {text!r} is not a whole number of seconds")
        return None
    n = int(text)
    if positive and n == 0:
        problems.add(where, f"{what} is 0 (it must be at least 1 second)")
        return None
    return n


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` is no prefix (None when it is digits)."""
    if not prefix:
        return "the prefix is empty"
    if not DIGITS.match(prefix):
        return f"prefix {prefix!r} is not digits"
    return None
