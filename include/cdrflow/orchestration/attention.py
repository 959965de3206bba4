"""A processing run that left files ``failed`` or ``rejected`` says so where operators look.

The ``report`` task of ``cdrflow_process`` logs the run's summary as the first thing in its log:
files by status, each failed or rejected file with its reason, the top rejection reasons with
their counts, the loaded files that quarantined rows, and how to see each file (``cdrflow file
ID``; a link when ``CDRFLOW_FILE_URL`` is set, see :func:`file_link`). Then, by
``CDRFLOW_ATTENTION``:

- ``fail`` (default): the task, and so the run, ends failed: red in the grid and the runs list,
  and Airflow's failure callbacks and notifications fire. A failed file is not taken again by
  the next run (only ``received`` files are), so each bad delivery turns exactly one run red.
- ``warn``: the run ends successful; the summary is logged as a warning. For deployments where
  carriers send bad files every day and red runs would hide the runs that really broke.

In both modes the summary is also sent as one notification (:meth:`RunSummary.message`,
through :mod:`cdrflow.orchestration.notify`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

from cdrflow.orchestration.notify import Message

if TYPE_CHECKING:  # not imported at run time: it brings pandas, which report does not need
    from cdrflow.loading.batches import BatchOutcome

log = logging.getLogger(__name__)

ENV = "CDRFLOW_ATTENTION"
MODES = ("fail", "warn")
FILE_URL_ENV = "CDRFLOW_FILE_URL"  # e.g. http://localhost:8080/plugin/cdrflow/cdr/operator/files/{id}
NEEDS_ATTENTION = ("failed", "rejected")
SHOWN = 20  # files listed one per line; the rest are counted
_COUNTED = ("files", "calls_loaded", "calls_flagged", "rows_rejected", "duplicates")


def mode() -> tuple[str, str | None]:
    """(``fail`` | ``warn``, a complaint about an unknown value or None); unknown values fail."""
    raw = (os.environ.get(ENV) or "fail").strip().lower()
    if raw in MODES:
        return raw, None
    return "fail", f"{ENV}={raw!r} is neither fail nor warn: treated as fail"


def file_link(file_id: int) -> str | None:
    """Where an operator sees file ``file_id`` in a browser: ``CDRFLOW_FILE_URL`` with ``{id}``
    replaced, or None (the hook for cdrflow's page in the Airflow UI)."""
    template = os.environ.get(FILE_URL_ENV, "").strip()
    return template.replace("{id}", str(file_id)) if template else None


def batch_notes(outcome: BatchOutcome) -> dict:
    """What ``report`` needs of a batch besides its counts: the files it processed, those that
    ended failed or rejected (with the first line of their reason), and the loaded ones that
    quarantined rows. Small enough for an XCom (ids, and one line per bad file)."""
    done = [r for r in outcome.results if r.status != "skipped"]
    return {
        "processed": [r.file_id for r in done],
        "attention": [
            {"id": r.file_id, "status": r.status, "reason": _reason(r.message)}
            for r in done
            if r.status in NEEDS_ATTENTION
        ],
        "quarantined": [r.file_id for r in done if r.status == "loaded" and r.rejected],
    }


def _reason(message: str, most: int = 240) -> str:
    """The first line of a file's outcome, without its sample lines (the top reasons list them)."""
    line = message.split("\n", 1)[0].split(" Samples: ", 1)[0].strip()
    return line if len(line) <= most else line[: most - 3] + "..."


@dataclass
class RunSummary:
    run_id: str
    totals: dict = field(default_factory=dict)
    attention: list[dict] = field(default_factory=list)  # id, status, reason, name, carrier
    quarantined: list[int] = field(default_factory=list)
    reasons: list[tuple[str, int]] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention)

    def headline(self) -> str:
        if not self.attention:
            return f"processing run {self.run_id}: {self.totals['files']} file(s), none failed or rejected"
        counts = _by_status(a["status"] for a in self.attention)
        return (
            f"ATTENTION: {len(self.attention)} of {self.totals['files']} file(s) of processing run {self.run_id} "
            f"need attention ({counts}): " + ", ".join(f"file {a['id']} {a['status']}" for a in self.attention[:SHOWN])
        )

    def lines(self, how: str) -> list[str]:
        """The summary, headline first."""
        t = self.totals
        out = [
            self.headline(),
            f"files by status: {_by_status_counts(t['by_status'])}; {t['calls_loaded']:,} calls loaded "
            f"({t['calls_flagged']:,} flagged), {t['rows_rejected']:,} rows quarantined, "
            f"{t['duplicates']:,} duplicate calls",
        ]
        for a in self.attention[:SHOWN]:
            link = file_link(a["id"])
            out.append(
                f"  file {a['id']} {a.get('name') or ''} ({a.get('carrier') or '?'}) {a['status']}: {a['reason']}"
                + (f" -> {link}" if link else "")
            )
        if len(self.attention) > SHOWN:
            out.append(f"  ... and {len(self.attention) - SHOWN} more failed or rejected file(s)")
        if self.reasons:
            out.append("top rejection reasons: " + "; ".join(f"{reason}: {n:,}" for reason, n in self.reasons))
        if self.quarantined:
            out.append(f"loaded with rows quarantined: files {_ids(self.quarantined)}")
        shown = [a["id"] for a in self.attention] or self.quarantined
        if shown:
            out.append(
                "see a file (its log, its quarantine, its calls): " + ", ".join(f"cdrflow file {i}" for i in shown[:5])
            )
        if self.attention:
            failed = [a["id"] for a in self.attention if a["status"] == "failed"]
            out.append(
                f'after a fix, trigger cdrflow_process with Reprocess file ids "{_ids([a["id"] for a in self.attention])}"'
                + (
                    f'; to load a failed file anyway, its quarantine kept: Accept file ids "{_ids(failed)}"'
                    if failed
                    else ""
                )
            )
            out.append(
                f"{ENV}={how}: "
                + ("this run ends failed, so it shows red" if how == "fail" else "this run ends successful (warn)")
            )
        return out

    def message(self, how: str) -> Message:
        """The run's notification (one per run, never one per file): the summary as its body."""
        counts = _by_status(a["status"] for a in self.attention)
        return Message(
            kind="files",
            subject=f"cdrflow: {len(self.attention)} file(s) failed or rejected ({counts}) in processing run "
            f"{self.run_id}",
            body="\n".join(self.lines(how)),
            facts={
                "run_id": self.run_id,
                "files": [{k: a.get(k) for k in ("id", "status", "reason", "name", "carrier")} for a in self.attention],
            },
        )

    def as_dict(self) -> dict:
        return {
            **self.totals,
            "attention": [a["id"] for a in self.attention],
            "quarantined": self.quarantined,
            "top_reasons": dict(self.reasons),
        }


_FILES = text("SELECT id, file_name, carrier FROM cdr_files WHERE id = ANY(:ids)")
_REASONS = text("""
SELECT reason, count(*) AS n
FROM rejected_rows r CROSS JOIN LATERAL unnest(r.reasons) AS reason
WHERE r.file_id = ANY(:ids)
GROUP BY reason ORDER BY n DESC, reason LIMIT :top
""")


def summarise(engine: Engine, run_id: str, summaries: Iterable[dict | None], top: int = 5) -> RunSummary:
    """The run's summary from its batches' summaries (``BatchOutcome.summary()`` plus
    :func:`batch_notes`), with names and rejection reasons read from the warehouse."""
    summary = RunSummary(run_id)
    totals: dict = dict.fromkeys(_COUNTED, 0) | {"by_status": {}}
    processed: list[int] = []
    for s in summaries:
        if not s:
            continue
        for key in _COUNTED:
            totals[key] += s.get(key, 0)
        for status, n in s.get("by_status", {}).items():
            totals["by_status"][status] = totals["by_status"].get(status, 0) + n
        processed += s.get("processed", [])
        summary.attention += s.get("attention", [])
        summary.quarantined += s.get("quarantined", [])
    summary.totals = totals
    summary.attention.sort(key=lambda a: a["id"])
    summary.quarantined.sort()
    if processed:
        with engine.connect() as conn:
            names = {r.id: r for r in conn.execute(_FILES, {"ids": [a["id"] for a in summary.attention]})}
            summary.reasons = [(r.reason, r.n) for r in conn.execute(_REASONS, {"ids": processed, "top": top})]
        for a in summary.attention:
            if row := names.get(a["id"]):
                a["name"], a["carrier"] = row.file_name, row.carrier
    return summary


def _by_status(statuses: Iterable[str]) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return _by_status_counts(counts)


def _by_status_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no file"


def _ids(ids: list[int], most: int = 50) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")
