"""Load a registered file: parse, validate, and copy its calls into the warehouse, exactly once.

Everything a file changes commits in ONE transaction: its calls, its quarantined rows, its
counts and its status. A crash anywhere rolls it all back and leaves the file ``received``,
ready to run again. The file's registry row is locked (``FOR UPDATE SKIP LOCKED``) for the
whole transaction, so two workers never load the same file. Files of one carrier may load at
the same time: the same call in two of them is caught by the primary key (the second COPY
waits for the first file's transaction, then the key refuses the row, see ``Writer.write``).

Speed: a staging COPY plus ``INSERT ... ON CONFLICT`` into the partitioned table costs about
2.8x a plain COPY. Instead each chunk is COPYed straight into its month partitions under a
savepoint (keys are looked up only when the primary key refuses a row), and a writer thread
does that while the main thread parses and validates the next chunk (PostgreSQL works on the
other core).
What PostgreSQL does per row is kept small: the rows go in COPY's binary format (no parsing
of timestamps and numbers) and in primary key order (index insertions next to each other,
about half the index work of random order); see :func:`copy_payload`. Chunks are validated
in groups (:func:`validated_chunks`), as a Great Expectations run has a fixed cost.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from cdrflow.config.errors import CdrflowError
from cdrflow.formats.base import FormatError, ParseOptions
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import append_log, set_status
from cdrflow.loading import legs
from cdrflow.loading.chunks import CheckedChunk, options_for, validated_chunks
from cdrflow.loading.counts import Counts
from cdrflow.loading.payloads import Batch, column_kinds
from cdrflow.loading.quarantine import Quarantine
from cdrflow.loading.writer import Writer
from cdrflow.validation import data_docs, suites
from cdrflow.validation.policy import Policy, failing_the_file, policy_for
from cdrflow.warehouse import carriers

log = logging.getLogger(__name__)

SAMPLE_LINES = 5


@dataclass
class LoadResult:
    file_id: int
    status: str  # loaded | failed | rejected | skipped
    lines: int = 0
    loaded: int = 0  # every call loaded, flagged ones included
    rejected: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    message: str = ""
    failed_expectations: dict[str, int] = field(default_factory=dict)
    flagged: int = 0  # calls loaded with quality flags (a subset of ``loaded``)
    counts: Counts = field(default_factory=Counts)  # what became of every record, in words
    accepted: bool = False  # loaded although over its threshold (an operator accepted it)


class FileBusy(CdrflowError):
    """Another worker holds the file (or it is not in a loadable status)."""


_LOOK_UP = object()


def load_file(
    engine: Engine,
    store: RawStore,
    file_id: int,
    *,
    progress: Callable[[str], None] | None = None,
    prepared: Iterable[CheckedChunk] | None = None,
    kinds=_LOOK_UP,
    accepted_by: str | None = None,
) -> LoadResult:
    """Parse, validate and load registered file ``file_id`` in one transaction.

    Raises :class:`FileBusy` when another worker holds the file or it is not ``received`` or
    ``failed``. Any exception rolls everything back (the file stays as it was).
    ``prepared``: the file's chunks, already parsed and validated (see :func:`validate_together`);
    they may raise :class:`FormatError` while iterated, as parsing would. They are written from
    this thread (there is no parsing left to overlap with).
    ``kinds``: what :func:`column_kinds` returns, when the caller has it already.
    ``accepted_by``: an operator accepted the file (who: a run or a command): it loads even
    over its carrier's threshold or with rows failing a ``fail`` check, its quarantine kept,
    and its log says so.

    Validation follows the carrier's policy (:mod:`cdrflow.validation.policy`): rows failing
    a ``flag`` check load with ``quality`` set; only quarantined rows count against the
    threshold; a row failing a ``fail`` check fails the file.

    Re-run of a file that was loaded before (an operator re-queued it): the new load replaces
    the earlier one in the same transaction, under the savepoint that holds the new calls, so
    the earlier calls stay until the new load commits. A re-run that fails (too many rejected
    rows) or is rejected changes nothing: the earlier calls, quarantine and counts stand, the
    file goes back to ``loaded`` and its log says why the re-run was refused (the result says
    ``failed``/``rejected``). A call of the file that another file also carries (refused there
    as a duplicate, see ``call_duplicates``) is never deleted: it is handed over to that file
    (its ``file_id`` and line change, its counts move), see :func:`_forget_previous_load`.
    """
    started = time.perf_counter()
    say = progress or log.info
    with engine.connect() as conn, conn.begin():
        row = conn.execute(
            text(
                "SELECT carrier, file_type, stored_file_id, file_name, calls_loaded, calls_rejected, calls_duplicate, status "
                "FROM cdr_files WHERE id = :id AND status IN ('received', 'failed') FOR UPDATE SKIP LOCKED"
            ),
            {"id": file_id},
        ).first()
        if row is None:
            raise FileBusy(
                f"file {file_id} is being loaded by another worker or is not in a loadable status (received or failed)"
            )
        conn.execute(text("SET LOCAL TimeZone = 'UTC'"))  # COPY payloads carry naive UTC times
        earlier = bool(row.calls_loaded or row.calls_duplicate)  # a load that left calls (or duplicates)
        if not earlier and (row.calls_rejected is not None or row.status == "failed"):
            conn.execute(text("DELETE FROM rejected_rows WHERE file_id = :id"), {"id": file_id})  # a failed run's
        carrier = carriers.get(conn, row.carrier)
        if not row.file_type:
            raise CdrflowError(f"file {file_id} has no file type and carrier {row.carrier} names none")
        set_status(conn, file_id, "processing", f"loading as {row.file_type}")
        dbapi = conn.connection.driver_connection
        assert dbapi is not None, "a checked-out connection has its DBAPI connection"
        with dbapi.cursor() as cur:
            cur.execute("SAVEPOINT calls")  # what this load writes; a refused load rolls back to here
        if earlier:
            _forget_previous_load(conn, file_id)
        inline = prepared is not None
        if prepared is None:
            suites.warm_up(row.file_type)
            options = options_for(carrier, row.file_type)
            policy = policy_for(
                row.file_type, options.mapping, carrier.config.get("checks"), where=f"carrier {carrier.code}"
            )
            prepared = _parse_stored(store, row.stored_file_id, row.file_type, options, policy)
        result, writer = _load(
            dbapi,
            file_id,
            row.file_name,
            carrier,
            prepared,
            say,
            column_kinds(dbapi) if kinds is _LOOK_UP else kinds,
            inline,
            keep_quarantine=not earlier,
            accepted_by=accepted_by,
            file_type=row.file_type,
        )
        result.seconds = time.perf_counter() - started
        if earlier and result.status != "loaded":
            # everything since the savepoint is gone: the earlier load stands, as it was
            result.message = (
                f"re-run {result.status}, nothing changed: the earlier load stands "
                f"({row.calls_loaded or 0} calls). {result.message}"
            )
            set_status(conn, file_id, "loaded", result.message)
            say(f"file {file_id} {row.file_name}: {result.message.splitlines()[0]}")
            return result
        set_status(conn, file_id, result.status, result.message, lines=result.lines, processed=True)
        conn.execute(
            text(
                "UPDATE cdr_files SET calls_loaded = :l, calls_rejected = :r, calls_duplicate = :d, "
                "calls_flagged = :f WHERE id = :id"
            ),
            {"l": result.loaded, "r": result.rejected, "d": result.duplicates, "f": result.flagged, "id": file_id},
        )
        if result.status == "loaded":
            legs.join_legs(conn, carrier, file_id, row.file_type)  # legs naming each other: one call
            # last: files of one carrier and day loading side by side wait for each other's
            # call_days row here, so it is held from this point to the commit only
            writer.record_days()
    say(
        f"file {file_id} {row.file_name}: {result.status}: {result.message.splitlines()[0] if result.message else ''} "
        f"({result.seconds:.1f}s)"
    )
    for line in result.counts.lines() if result.lines else []:  # the task log: what became of each record
        say(f"file {file_id}: {line}")
    return result


def _parse_stored(
    store: RawStore, key: str, file_type: str, options: ParseOptions, policy: Policy
) -> Iterator[CheckedChunk]:
    with store.open(key) as stream:
        yield from validated_chunks(stream, file_type, options, policy)


# Calls of the re-run file that other files also carry (their rows were refused as duplicates)
# go over to one of those files (the lowest id) instead of being deleted.
_HAND_OVER = text("""
WITH heirs AS (
    SELECT DISTINCT ON (d.carrier, d.record_key, d.start_time)
           d.carrier, d.record_key, d.start_time, d.file_id, d.line_number
    FROM call_duplicates d
    JOIN calls c ON c.carrier = d.carrier AND c.record_key = d.record_key
                AND c.start_time = d.start_time AND c.file_id = :id
    WHERE d.file_id <> :id
    ORDER BY d.carrier, d.record_key, d.start_time, d.file_id
), moved AS (
    UPDATE calls c SET file_id = h.file_id, line_number = h.line_number
    FROM heirs h
    WHERE c.carrier = h.carrier AND c.record_key = h.record_key AND c.start_time = h.start_time
      AND c.file_id = :id
    RETURNING c.carrier, c.record_key, c.start_time, h.file_id AS heir, c.quality IS NOT NULL AS flagged
), released AS (  -- the heir's rows of these calls are no longer duplicates: the calls are its own
    DELETE FROM call_duplicates d USING moved m
    WHERE d.file_id = m.heir AND d.carrier = m.carrier AND d.record_key = m.record_key
      AND d.start_time = m.start_time
)
SELECT heir, count(*) AS n, count(*) FILTER (WHERE flagged) AS flagged FROM moved GROUP BY heir ORDER BY heir
""")

_FORGET = text("""
WITH gone AS (
    DELETE FROM calls WHERE file_id = :id
    RETURNING carrier, (start_time AT TIME ZONE 'UTC')::date AS day
), per_day AS (SELECT carrier, day, count(*) AS n FROM gone GROUP BY carrier, day)
UPDATE call_days d SET calls = d.calls - p.n FROM per_day p
WHERE d.carrier = p.carrier AND d.day = p.day
""")


def _forget_previous_load(conn, file_id: int) -> None:
    """Undo what the earlier load of ``file_id`` wrote, inside the caller's savepoint: its
    calls (those another file also carries go over to that file, whose counts and log say so),
    its duplicate records and its quarantine."""
    handed = conn.execute(_HAND_OVER, {"id": file_id}).all()
    for heir, n, flagged in handed:
        conn.execute(
            text(
                "UPDATE cdr_files SET calls_loaded = coalesce(calls_loaded, 0) + :n, "
                "calls_flagged = coalesce(calls_flagged, 0) + :flagged, "
                "calls_duplicate = greatest(coalesce(calls_duplicate, 0) - :n, 0) WHERE id = :heir"
            ),
            {"n": n, "flagged": flagged, "heir": heir},
        )
        append_log(conn, heir, f"{n} call(s) of file {file_id} (being reprocessed) are this file's now")
    conn.execute(_FORGET, {"id": file_id})
    conn.execute(text("DELETE FROM call_duplicates WHERE file_id = :id"), {"id": file_id})
    conn.execute(text("DELETE FROM rejected_rows WHERE file_id = :id"), {"id": file_id})
    handed_note = (
        f"; {sum(n for _, n, _ in handed)} call(s) also carried by file(s) {', '.join(str(h) for h, _, _ in handed)} handed over to them"
        if handed
        else ""
    )
    append_log(conn, file_id, f"re-run: the calls of the earlier load are replaced{handed_note}")


def _load(
    dbapi,
    file_id,
    file_name,
    carrier,
    chunks: Iterable[CheckedChunk],
    say,
    kinds,
    inline: bool,
    *,
    keep_quarantine=True,
    accepted_by: str | None = None,
    file_type: str = "",
) -> tuple[LoadResult, Writer]:
    """Write ``chunks`` (after ``SAVEPOINT calls``); ``inline``: from this thread, else from a
    writer thread while this one parses the next chunk. ``keep_quarantine``: write the rejected
    rows of a load that is not ``loaded`` too (False: a refused re-run leaves no trace but its log).
    ``accepted_by``: load even when the file would fail (see :func:`load_file`)."""
    result = LoadResult(file_id, "loaded")
    quarantine = Quarantine(file_id)
    writer = Writer(dbapi, carrier.code, file_id, kinds)
    send: Callable[[Batch], None]
    if inline:
        send = writer.write
    else:
        writer.start()
        send = writer.inbox.put
    summaries = []
    repeat_lines: list[tuple[int, int | None, int]] = []
    started = last_report = time.perf_counter()
    try:
        for chunk in chunks:
            for p in chunk.rejected:
                quarantine.add(p.line_number, p.raw_text, p.reasons, p.raw_bytes)
            result.lines += chunk.lines
            result.duplicates += chunk.repeats
            repeat_lines += [(n, None, m) for n, m in chunk.repeat_lines[: 20 - len(repeat_lines)]]
            if chunk.summary:
                summaries.append(chunk.summary)
            if writer.error:
                break
            if chunk.batch is not None:
                send(chunk.batch)
            elif len(chunk.calls):  # the raw text is only needed for the quarantine, already done
                send(
                    Batch.prepare(chunk.calls.drop(columns=["raw_text"], errors="ignore"), carrier.code, file_id, kinds)
                )
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                say(
                    f"file {file_id} {file_name}: {result.lines:,} lines read, {writer.loaded:,} calls "
                    f"written, {result.lines / (last_report - started):,.0f} lines/s"
                )
            del chunk  # not kept alive while the next chunks are parsed
    except FormatError as exc:
        result.status, result.message = "rejected", str(exc)
    finally:
        if not inline:
            writer.inbox.put(None)
            writer.join()
    if writer.error:
        raise writer.error
    result.loaded = writer.loaded
    result.flagged = writer.flagged
    result.duplicates += writer.duplicates
    result.rejected = len(quarantine)
    counts = result.counts
    counts.read, counts.loaded, counts.flagged = result.lines, result.loaded, result.flagged
    counts.rejected, counts.repeats = result.rejected, result.duplicates
    counts.repeat_lines = repeat_lines + [(n, None if f == file_id else f, m) for n, f, m in writer.repeat_lines]
    counts.add_rejected(r[3] for r in quarantine.rows)
    counts.add_parse_flags(writer.qualities)
    fatal: dict[str, int] = {}
    merged: list[suites.ValidationSummary] = []
    if summaries:
        merged = suites.merge_summaries(summaries)
        result.failed_expectations = {s.expectation: s.unexpected_count for s in merged if not s.success}
        result.message += suites.format_summary(merged)
        counts.add_summary(merged)
        fatal = failing_the_file(merged)
    with dbapi.cursor() as cur:
        refusal = _refusal(result, carrier, fatal, quarantine) if result.status == "loaded" else ""
        if refusal and accepted_by:
            result.accepted = True
            result.message = f"accepted by {accepted_by} although {refusal}; its quarantine is kept\n" + result.message
        elif refusal:
            result.status = "failed"
            samples = "; ".join(f"line {r[0]}: {r[3]}" for r in quarantine.rows[:SAMPLE_LINES])
            failing = {k: n for k, n in result.failed_expectations.items() if counts.severities.get(k) != "flag"}
            result.message = (
                f"{refusal}; nothing loaded. Failing: {failing or 'parse errors'}. Samples: {samples}\n"
                + result.message
            )
        if result.status != "loaded":
            cur.execute("ROLLBACK TO SAVEPOINT calls")
            counts.not_loaded, counts.loaded, counts.flagged = result.loaded, 0, 0
            result.loaded = result.duplicates = result.flagged = 0
            if not keep_quarantine:
                return result, writer
            if result.lines:
                result.message = _with_counts(result.message, counts, at=1)
        else:
            result.message = _with_counts(
                f"{result.lines} lines: {result.loaded} calls loaded ({result.flagged} flagged), {result.rejected} "
                f"rejected, {result.duplicates} duplicates\n" + result.message,
                counts,
                at=1 + result.accepted,
            )
        quarantine.write(cur)
        _store_validation(cur, file_id, file_name, carrier.code, file_type, merged)
    return result, writer


_STORE_VALIDATION = (
    "INSERT INTO file_validations (file_id, suite_name, success, result) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (file_id) DO UPDATE SET validated_at = now(), suite_name = excluded.suite_name, "
    "success = excluded.success, result = excluded.result"
)


def _store_validation(cur, file_id: int, file_name: str, carrier: str, file_type: str, merged) -> None:
    """The file's validation result, for its Data Docs page (sql/026): a few kilobytes of JSON,
    nothing rendered here. A load that validated nothing (rejected before validation) leaves
    none, not an earlier run's."""
    document = data_docs.result_document(
        merged, file_type=file_type, file_id=file_id, file_name=file_name, carrier=carrier
    )
    if document is None:
        cur.execute("DELETE FROM file_validations WHERE file_id = %s", (file_id,))
        return
    cur.execute(
        _STORE_VALIDATION,
        (
            file_id,
            document["suite_name"],
            document["success"],
            json.dumps(document, separators=(",", ":"), default=str),
        ),
    )


def _refusal(result: LoadResult, carrier, fatal: dict[str, int], quarantine: Quarantine) -> str:
    """Why the file fails (empty: it does not): too many quarantined rows (flagged rows do not
    count), or rows failing a check whose severity is ``fail``."""
    why = []
    if result.lines and result.rejected / result.lines > carrier.reject_threshold:
        why.append(
            f"{result.rejected} of {result.lines} lines rejected "
            f"({result.rejected / result.lines:.1%} > threshold {carrier.reject_threshold:.0%})"
        )
    if fatal:
        why.append("rows failed checks of severity fail: " + ", ".join(f"{k} {n}" for k, n in fatal.items()))
    return "; ".join(why)


def _with_counts(message: str, counts: Counts, at: int) -> str:
    """``message`` with the counts' lines (equation, top failing checks, repeats) after its
    first ``at`` lines."""
    lines = message.split("\n")
    return "\n".join(lines[:at] + counts.lines() + lines[at:])
