"""CSV injection: cells a spreadsheet would run as a formula are made plain text.

Every CSV cdrflow hands out (the CDRs API, report downloads, the billing feed) ends up opened
in Excel or LibreOffice sooner or later, and a caller name or SIP URI chosen by whoever placed
the call is data we do not control. A spreadsheet evaluates a cell as a formula when it starts
with ``=``, ``+``, ``-`` or ``@`` (and some strip a leading tab or carriage return first), so
``=HYPERLINK(...)`` or ``-2+3+cmd|' /C calc'!A0`` in a caller-id name would run on the
reader's machine (OWASP "CSV Injection").

The rule (:func:`neutralise`): a text cell is prefixed with a single quote ``'`` when it starts
with ``=``, ``@``, a tab or a carriage return, or with ``+`` or ``-`` unless the whole cell is a
plain number or telephone number (``+`` or ``-``, a digit, then only digits, spaces and
``. , ( ) / -``). So ``+15551230001``, ``-1.5`` and ``+61 2 9999 9999`` are kept as they
are (they are the data people filter on), while ``+cmd``, ``-`` alone and ``-2+3+cmd|...``
are neutralised. The quote is what spreadsheets themselves use to mark text; a program reading
the CSV sees it as part of the value. Numbers cdrflow writes (seconds, timestamps, money) are
not text cells and are never changed.
"""

from __future__ import annotations

import re
from typing import Any

_ALWAYS = ("=", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-][0-9][0-9 .,()/-]*")


def is_dangerous(cell: str) -> bool:
    """Whether a spreadsheet could take ``cell`` for a formula."""
    if not cell:
        return False
    if cell.startswith(_ALWAYS):
        return True
    if cell[0] in "+-":
        return _NUMBER.fullmatch(cell) is None
    return False


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet will show it as text: prefixed with ``'`` when dangerous."""
    return "'" + cell if is_dangerous(cell) else cell


def safe_cell(value: Any) -> Any:
    """A CSV cell value: strings neutralised, anything else (numbers, None) unchanged."""
    return neutralise(value) if isinstance(value, str) else value
