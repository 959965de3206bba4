"""The life of a registered file: its statuses and the moves allowed between them.

    received ──> processing ──> loaded
        │            │   │
        │            │   └──> failed ──> processing (re-run) / received (re-queue)
        │            └──────> rejected (not a usable file: bomb, wrong format)
        ├──> rejected
        └──> failed    (its stored bytes are missing, or processing kept failing)
    loaded / rejected ──> received     (an operator asks for a re-run)
    duplicate: final; it was never loaded and never will be (its original is).

``processing`` is normally never committed: the loader sets it inside the file's loading
transaction (and an archive inside the transaction that records its members), so a worker that
dies rolls it back. ``processing -> received`` is the housekeeping's repair
(:mod:`cdrflow.intake.housekeeping`) of a file left ``processing`` with no live claim.
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
    S.RECEIVED: frozenset({S.PROCESSING, S.REJECTED, S.FAILED}),
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
