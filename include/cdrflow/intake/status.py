"""The life of a registered file: its statuses and the moves allowed between them.

    received ──> processing ──> loaded
        │            │   │
        │            │   └──> failed ──> processing (re-run) / received (re-queue)
        │            └──────> rejected (not a usable file: bomb, wrong format)
        └──> rejected
    loaded / rejected ──> received     (an operator asks for a re-run)
    duplicate: final; it was never loaded and never will be (its original is).

``processing -> received`` releases a claim that a crashed worker left behind.
"""

from __future__ import annotations

from enum import StrEnum

from cdrflow.config.errors import IllegalTransition


class FileStatus(StrEnum):
    RECEIVED = "received"
    PROCESSING = "processing"
    LOADED = "loaded"
    FAILED = "failed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


S = FileStatus
TRANSITIONS: dict[FileStatus, frozenset[FileStatus]] = {
    S.RECEIVED: frozenset({S.PROCESSING, S.REJECTED}),
    S.PROCESSING: frozenset({S.LOADED, S.FAILED, S.REJECTED, S.RECEIVED}),
    S.FAILED: frozenset({S.PROCESSING, S.RECEIVED}),
    S.LOADED: frozenset({S.RECEIVED}),
    S.REJECTED: frozenset({S.RECEIVED}),
    S.DUPLICATE: frozenset(),
}


def allowed_sources(new: FileStatus) -> list[str]:
    """Every status from which a file may move to ``new``."""
    return [str(old) for old, targets in TRANSITIONS.items() if new in targets]


def check(old: FileStatus | str, new: FileStatus | str) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is allowed."""
    old, new = FileStatus(old), FileStatus(new)
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none (final status)"
        raise IllegalTransition(f"a {old} file cannot become {new}; allowed from {old}: {allowed}")
