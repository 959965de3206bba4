"""Parse without loading: a file's chunks, parsed, repeats dropped, validated.

What the loader writes and what ``cdrflow parse`` (the dry run) prints come from here; nothing
in this module touches the warehouse.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError
from cdrflow.formats import get_parser
from cdrflow.formats.base import FormatError, ParseOptions, RowProblem
from cdrflow.formats.numbering import DialPlan, normalise
from cdrflow.loading.keys import repeat_lines, repeats
from cdrflow.loading.payloads import Batch
from cdrflow.validation import suites
from cdrflow.validation.grouped import validate_owned
from cdrflow.validation.policy import Policy, policy_for
from cdrflow.warehouse import carriers


@dataclass
class CheckedChunk:
    calls: pd.DataFrame  # rows that parsed and passed validation (or only failed checks that flag)
    rejected: list[RowProblem]  # rows that did not, with reasons
    summary: list  # validation summary of this chunk
    lines: int  # records read in this chunk
    repeats: int = 0  # records that repeat an earlier record of the chunk (same record_key and start)
    batch: Batch | None = None  # COPY payloads of ``calls``, when built already (small_files)
    repeat_lines: list[tuple[int, int]] = field(default_factory=list)  # (line, the line it repeats)


def options_for(carrier: carriers.Carrier, file_type: str) -> ParseOptions:
    """Parse options from the carrier's configuration (time zone, encoding, mapping, dial plan)."""
    mapping = None
    if file_type == "mapped":
        if not carrier.mapping:
            raise CdrflowError(f"carrier {carrier.code} uses type 'mapped' but names no mapping file")
        from cdrflow.formats.mapped import load_mapping

        path = Path(carrier.mapping)
        mapping = load_mapping(path if path.is_absolute() else settings.REPO_DIR / path)
    return ParseOptions(
        timezone=carrier.config.get("timezone", "UTC"),
        encoding=carrier.config.get("encoding", "utf-8"),
        mapping=mapping,
        dial_plan=DialPlan.from_config(carrier.config.get("dial_plan")),
    )


def parsed_chunks(stream: BinaryIO, file_type: str, options: ParseOptions) -> Iterator[CheckedChunk]:
    """Parse ``stream`` as ``file_type``, not yet validated: each chunk's parse problems are in
    ``rejected``, exact repeats of a call inside the chunk are dropped and counted.
    :class:`FormatError` propagates."""
    readable = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[type-var]
    for chunk in get_parser(file_type).parse(readable, options):
        frame = chunk.calls
        # The same call delivered twice is a duplicate, not a broken row: drop exact repeats
        # before the suite checks that record keys are unique within the file.
        repeat = repeats(frame)
        pairs = repeat_lines(frame, repeat)
        if repeat.any():
            frame = frame[~repeat]
        frame = normalise(frame, options.dial_plan)  # E.164 numbers and number types
        yield CheckedChunk(
            frame, list(chunk.problems), [], len(chunk.calls) + len(chunk.problems), int(repeat.sum()), None, pairs
        )


def _apply(chunk: CheckedChunk, checked: suites.ChunkValidation, policy: Policy) -> CheckedChunk:
    """Apply ``policy`` to the rows that failed an expectation (by line number)."""
    lines = chunk.calls["line_number"].to_numpy()
    bad = {int(p): checked.bad_rows[int(lines[p])] for p in np.flatnonzero(np.isin(lines, list(checked.bad_rows)))}
    return _apply_at(chunk, bad, checked.summary, policy)


VALIDATION_ROWS = 60_000  # rows per Great Expectations run, about (a run costs ~0.03 s plus ~0.4 us a row)


def validated_chunks(
    stream: BinaryIO, file_type: str, options: ParseOptions, policy: Policy | None = None
) -> Iterator[CheckedChunk]:
    """Parse ``stream`` as ``file_type`` and validate each chunk (Great Expectations).

    Rows that fail parsing, or an expectation whose severity in ``policy`` is ``reject`` or
    ``fail``, come back in ``rejected`` with their line numbers and the names of what they
    failed; rows that failed only ``flag`` checks stay in ``calls`` with those names in
    ``quality``. ``policy``: default, the suite's severities with the mapping's ``checks:``.
    :class:`FormatError` propagates.

    A suite run costs about 0.03 s whatever its size on a quick machine (0.1 s before
    :mod:`cdrflow.validation.gx_run_cache`, which builds GX's objects once per run and its plan
    once per suite; 60,000 rows add 0.02-0.04 s) and a parser's chunk
    holds some 30,000 rows, so chunks are validated in groups of about :data:`VALIDATION_ROWS`
    rows, with the results of validating each chunk alone (see :func:`validate_together`); they
    still come out one by one. The first chunk is validated by itself, so that loading starts
    early (smaller first groups and blocks were tried: the writer's wait moved, it did not shrink).
    (Groups of 200,000 rows loaded a 1M-row file 4% faster but took 190 MiB more memory.)
    """
    policy = policy or policy_for(file_type, options.mapping, where="mapping")
    parsed = parsed_chunks(stream, file_type, options)
    group: list[CheckedChunk] = []
    rows = 0
    first = True
    while True:
        try:
            chunk = next(parsed)
        except StopIteration:
            break
        except FormatError:
            yield from _validated_group(group, file_type, policy)  # what was read before, as before
            raise
        group.append(chunk)
        rows += len(chunk.calls)
        del chunk  # not kept alive while the next chunks are parsed
        if first or rows >= VALIDATION_ROWS:
            yield from _validated_group(group, file_type, policy)
            group, rows, first = [], 0, False
    yield from _validated_group(group, file_type, policy)


def _validated_group(group: list[CheckedChunk], file_type: str, policy: Policy) -> Iterator[CheckedChunk]:
    """The chunks of ``group``, validated; each is let go of once handed out (memory)."""
    if sum(1 for c in group if len(c.calls)) > 1:
        group[:] = [chunk for (chunk,) in validate_together([[c] for c in group], file_type, [policy] * len(group))]
    else:
        group[:] = [_apply(c, suites.validate_chunk(c.calls, file_type), policy) if len(c.calls) else c for c in group]
    group.reverse()
    while group:
        yield group.pop()


def validate_together(
    files: list[list[CheckedChunk]], file_type: str, policies: list[Policy] | None = None
) -> list[list[CheckedChunk]]:
    """Validate the parsed chunks of several small files of one type in ONE suite run;
    ``policies``: each file's (default: the suite's severities).

    A Great Expectations run costs about 0.03 s whatever its size, which would
    dominate a file of a thousand calls; a day of thousands of small files is validated in
    groups instead, with exactly the results of validating each file alone (see
    :func:`validate_owned`).
    """
    parts, where = [], []
    used = suites.columns(file_type)  # the suite's columns: the others need no copying
    for f, chunks in enumerate(files):
        for c, chunk in enumerate(chunks):
            if len(chunk.calls):
                parts.append(chunk.calls[[name for name in used if name in chunk.calls]])
                where.append((f, c, len(chunk.calls)))
    if not parts:
        return files
    policies = policies or [policy_for(file_type)] * len(files)
    combined = pd.concat(parts, ignore_index=True)
    sizes = [n for _, _, n in where]
    owner = np.repeat(np.array([f for f, _, _ in where], dtype=np.int64), sizes)
    segment = np.repeat(np.arange(len(where), dtype=np.int64), sizes)  # each chunk's own summary
    bad, summaries = validate_owned(combined, owner, len(files), file_type, segment, len(where))
    out = [list(chunks) for chunks in files]
    offset = 0
    for k, (f, c, n) in enumerate(where):
        mine = {i - offset: reasons for i, reasons in bad.items() if offset <= i < offset + n}
        out[f][c] = _apply_at(out[f][c], mine, summaries[k], policies[f])
        offset += n
    return out


def _joined(parser_flags: str | None, checks: str) -> str:
    """The quality of a row the parser flagged already (a line read as Latin-1) and that failed
    flag checks too: both lists, the parser's first."""
    return checks if parser_flags is None else json.dumps(json.loads(parser_flags) + json.loads(checks))


def _apply_at(chunk: CheckedChunk, bad: dict[int, list[str]], summary, policy: Policy) -> CheckedChunk:
    """Apply ``policy`` to the rows at positions ``bad`` (their failed expectations): move those
    to reject from ``calls`` to ``rejected``, write the names of flagged rows' checks in their
    ``quality``. Clean rows are not touched one by one."""
    frame = chunk.calls
    rejected = list(chunk.rejected)
    to_reject, flagged = policy.split(bad)
    if flagged:
        at = np.fromiter(flagged, dtype=np.int64, count=len(flagged))
        quality = frame["quality"].to_numpy(dtype=object, na_value=None).copy()
        quality[at] = [_joined(quality[p], flagged[int(p)]) for p in at]
        frame = frame.assign(quality=pd.array(quality, dtype=frame["quality"].dtype))
    if to_reject:
        mask = np.zeros(len(frame), dtype=bool)
        positions = np.sort(np.fromiter(to_reject, dtype=np.int64, count=len(to_reject)))
        mask[positions] = True
        lines = frame["line_number"].to_numpy()[positions]
        texts = frame["raw_text"].to_numpy(dtype=object)[positions]
        rejected += [RowProblem(int(n), t, to_reject[int(p)]) for p, n, t in zip(positions, lines, texts)]
        frame = frame[~mask]
    return CheckedChunk(frame, rejected, policy.label(summary), chunk.lines, chunk.repeats, None, chunk.repeat_lines)
