"""What a rate deck dropped into the deck drop location is, read from its path alone.

The convention (README "Rate decks dropped into a folder or bucket")::

    <deck>/<YYYY-MM-DD>__<label>[.<tag>...].csv          cdrflow CSV: the next version of <deck>
    <deck>/<YYYY-MM-DD>__<label>[.<tag>...].cdrtool/     CDRTool rating tables (a folder)
    <deck>/<YYYY-MM-DD>__<label>[.<tag>...].cgrates/     CGRateS tariff plan: its rating plan <deck> only
    <YYYY-MM-DD>__<label>[.<tag>...].cgrates/            CGRateS tariff plan: every rating plan is a deck

A folder may instead be dropped as one zip: ``.cdrtool.zip``, ``.cgrates.zip``. The date is the
first day in force (the CLI's ``--effective-from``); ``__<label>`` is free text and optional.
Tags, for a new deck (an existing deck keeps its own, as with the CLI): ``buy`` or ``sell`` and
a currency code (``EUR``), e.g. ``2026-11-01__carrier-x.buy.EUR.csv``.

The date is required, not "today": the same bytes for the same deck and date are imported once,
and a name without a date would make a re-drop on another day a new version. Kept apart from the
storage code so the rules are plain functions of a string, tested without any store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from cdrflow.billing.model import DECK_KINDS
from cdrflow.config.errors import CdrflowError

# Longest first: ".cdrflow.csv" before ".csv". (suffix, format, shape)
SUFFIXES = (
    (".cdrflow.csv", "cdrflow", "file"),
    (".cgrates.zip", "cgrates", "zip"),
    (".cdrtool.zip", "cdrtool", "zip"),
    (".cgrates", "cgrates", "folder"),
    (".cdrtool", "cdrtool", "folder"),
    (".csv", "cdrflow", "file"),
)
# Top-level folders of the drop location that are not decks: where handled drops are kept.
PROCESSED = "processed"
REJECTED = "rejected"
RESERVED = (PROCESSED, REJECTED)
READY_MARKER = ".ready"
# Names a client is still writing (rsync, browsers, most upload tools): left alone until renamed.
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".crdownload")
EXAMPLE = "2026-11-01__november.csv"

_DATED = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:__.*)?$", re.DOTALL)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class DropRefused(CdrflowError):
    """A drop that cannot be imported as it is (its name, its shape or its content): it is kept
    in ``rejected/`` with these problems beside it. ``problems``: one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(problems[0] if problems else "refused")


@dataclass(frozen=True)
class DropSpec:
    """A drop as its name describes it."""

    name: str  # path under the drop location, "/"-separated
    format: str  # cdrflow | cgrates | cdrtool
    shape: str  # file | folder | zip
    effective_from: date
    deck: str | None  # the deck folder; None: a CGRateS plan at the top (every rating plan)
    currency: str | None = None  # tag, for a new deck
    kind: str | None = None  # tag, for a new deck

    @property
    def target(self) -> str:
        """What the drop imports into: its deck, or '' for every plan of a tariff plan."""
        return self.deck or ""


def ignored(name: str) -> bool:
    """A name the DAG leaves alone: hidden, or still being written."""
    return not name or name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES)


def format_suffix(name: str) -> tuple[str, str, str] | None:
    """The (suffix, format, shape) that ``name`` ends with, case-insensitively; None: no deck suffix."""
    lower = name.lower()
    for suffix, fmt, shape in SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[-len(suffix) :], fmt, shape
    return None


def is_format_folder(name: str) -> bool:
    """A top-level folder that is a drop (``x.cgrates``, ``x.cdrtool``) rather than a deck folder."""
    found = format_suffix(name)
    return found is not None and found[2] == "folder"


def with_sha(name: str, sha1: str) -> str:
    """``name`` with ``.<first 12 of sha1>`` before its deck suffix: the name under which a drop is
    kept when ``processed/`` or ``rejected/`` already holds one of that name (other bytes, since
    the same bytes are only ever kept once): nothing kept is overwritten by something else."""
    found = format_suffix(name)
    if found is None:
        return f"{name}.{sha1[:12]}"
    suffix = found[0]
    return f"{name[: -len(suffix)]}.{sha1[:12]}{suffix}"


def parse(name: str, is_dir: bool) -> DropSpec:
    """The :class:`DropSpec` of the drop at ``name`` (relative, ``/``-separated), or
    :class:`DropRefused` saying what the name should look like."""
    parts = name.split("/")
    item = parts[-1]
    if len(parts) > 2:
        raise DropRefused([f"{name}: too deep: a drop is <deck>/<item> or a tariff plan at the top"])
    found = format_suffix(item)
    if found is None:
        what = "folder" if is_dir else "file"
        raise DropRefused(
            [
                f"{name}: a {what} without a deck suffix: name a cdrflow deck <deck>/{EXAMPLE}, a folder "
                "<deck>/<date>__<label>.cdrtool/ or .cgrates/ (with a .ready file when complete), or a "
                ".cdrtool.zip or .cgrates.zip"
            ]
        )
    suffix, fmt, shape = found
    if shape == "folder" and not is_dir:
        raise DropRefused([f"{name}: a {fmt} drop is a folder (with a .ready file when complete) or a {suffix}.zip"])
    if shape != "folder" and is_dir:
        raise DropRefused(
            [f"{name}: a folder named like a file ({suffix}): a folder drop ends in .cdrtool or .cgrates"]
        )
    deck = parts[0] if len(parts) == 2 else None
    if deck is None and fmt != "cgrates":
        raise DropRefused(
            [f"{name}: a {fmt} deck belongs in a folder named after its deck: <deck>/{item} (the deck name)"]
        )
    if deck is not None and (deck in RESERVED or ignored(deck)):
        raise DropRefused([f"{name}: {deck!r} cannot be a deck name here"])
    stem = item[: -len(suffix)]
    tokens = stem.split(".")
    currency = kind = None
    while len(tokens) > 1:
        token = tokens[-1]
        if token in DECK_KINDS and kind is None:
            kind = token
        elif _CURRENCY.match(token) and currency is None:
            currency = token
        else:
            break
        tokens.pop()
    head = ".".join(tokens)
    return DropSpec(
        name=name,
        format=fmt,
        shape=shape,
        effective_from=_date(name, head),
        deck=deck,
        currency=currency,
        kind=kind,
    )


def _date(name: str, head: str) -> date:
    match = _DATED.match(head)
    if not match:
        raise DropRefused([f"{name}: the name must start with the first day in force, YYYY-MM-DD__ (e.g. {EXAMPLE})"])
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        raise DropRefused([f"{name}: {match.group(1)} is not a date (YYYY-MM-DD)"]) from None


def manual_path(value: str) -> str:
    """The ``path`` a manual run names, checked: relative, inside the drop location, not in
    ``processed/`` or ``rejected/``. A form must not reach outside the drop location."""
    text = value.strip().strip("/")
    parts = text.split("/")
    if not text or any(p in ("", ".", "..") for p in parts) or value.strip().startswith("/") or "\\" in text:
        raise CdrflowError(f"path {value!r}: give a drop's path under the drop location, e.g. retail/{EXAMPLE}")
    if parts[0] in RESERVED:
        raise CdrflowError(f"path {value!r}: drops in {parts[0]}/ were handled already; drop it again to import it")
    return text
