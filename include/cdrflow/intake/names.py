"""File names that came from outside: one rule for every source.

A name arrives from a mail attachment, a zip member, a remote listing, an S3 key or a local
folder; it ends in ``cdr_files.file_name``, in log lines and in tables on a terminal. It is never
used as a path. :func:`clean_name` makes it safe for all of those, and
:func:`cdrflow.intake.registry.register_file`, the one door every file passes, applies it.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 255  # characters, as most file systems allow
REPLACEMENT = "_"
# Categories that do not print as themselves: controls (C0, DEL, C1: NUL, tab, newline, NEL,
# ESC...), formats (bidi overrides, zero-width), line and paragraph separators, unpaired
# surrogates (undecodable bytes of a local file name), private use and unassigned code points.
_UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def clean_name(name: str, fallback: str = "unnamed") -> str:
    """The last path component of ``name`` (``/`` and ``\\`` both separate), every unprintable
    character replaced by ``_`` (surrounding white space removed first), at most :data:`MAX_LENGTH`
    characters (the extension kept); ``fallback`` when nothing usable is left (``""``, ``.``,
    ``..``, only blanks). The result is stable: cleaning it again changes nothing."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1].strip()  # blanks at the ends go, tabs too
    text = "".join(REPLACEMENT if unicodedata.category(ch) in _UNPRINTABLE else ch for ch in last)
    if text.strip(". " + REPLACEMENT) == "":
        return fallback
    return _bounded(text)


def _bounded(text: str) -> str:
    if len(text) <= MAX_LENGTH:
        return text
    stem, dot, ext = text.rpartition(".")
    if dot and stem and len(ext) <= 16:
        return stem[: MAX_LENGTH - len(ext) - 1].rstrip() + "." + ext
    return text[:MAX_LENGTH].rstrip()
