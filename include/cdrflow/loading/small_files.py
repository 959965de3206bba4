"""Small files of one type, made ready to load together.

A day can bring thousands of files of a thousand calls. Every step before loading (parse,
repeat check, Great Expectations, building the COPY data) has a fixed cost per call that,
per file, outweighs the calls themselves. Here a group of small files goes through each step
once:

- parsed as one stream per carrier where the format allows it (:mod:`cdrflow.formats.joined`;
  other formats, and files that cannot be joined, are parsed one by one as before);
- repeats of a call inside a file found for all files in one pass (a repeat is one within
  its own file: the same call in two files is a duplicate, caught by the primary key when
  the second file loads);
- validated in one suite run, with each file's results as if it were validated alone
  (:func:`cdrflow.validation.grouped.validate_owned`);
- encoded for binary COPY in one pass, sorted by file, month and primary key.

Each file then gets its own rows, rejected lines, counts, summary and COPY payloads, and still
loads in a transaction of its own (:func:`cdrflow.loading.transaction.load_file` with ``prepared=``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cdrflow.formats import get_parser
from cdrflow.formats.base import FormatError, ParseOptions, RowProblem
from cdrflow.formats.joined import Joined, JoinedChunk
from cdrflow.formats.numbering import normalise
from cdrflow.loading.chunks import CheckedChunk, parsed_chunks, validate_together
from cdrflow.loading.keys import day_counts, owned_hashes, repeat_lines, repeats, utc_days
from cdrflow.loading.payloads import Batch, call_rows
from cdrflow.validation.grouped import validate_owned
from cdrflow.validation.policy import Policy, policy_for
from cdrflow.warehouse.copy_binary import BinaryCopy


@dataclass
class Prepared:
    """One file of the group: its chunks, parsed and validated, or why it cannot be read."""

    chunks: list[CheckedChunk] | None = None
    error: FormatError | None = None


def prepare(
    datas: list[bytes],
    carriers: list[str],
    file_ids: list[int],
    file_type: str,
    options: dict[str, ParseOptions],
    kinds: dict[str, str] | None,
    policies: dict[str, Policy] | None = None,
) -> list[Prepared]:
    """Parse and validate the files ``datas`` (whole contents; ``carriers`` and ``file_ids``
    theirs), all of ``file_type``; ``options``: each carrier's parse options; ``policies``:
    each carrier's validation policy (default: the suite's severities and the mapping's). Files
    are parsed per carrier (time zone, encoding), validated all together. ``kinds``: the calls columns'
    types (see :func:`cdrflow.loading.payloads.column_kinds`); None builds no COPY data here (the loader
    then does, per file)."""
    out = [Prepared() for _ in datas]
    policies = policies or {}
    policy = {c: policies.get(c) or policy_for(file_type, options[c].mapping, where="mapping") for c in set(carriers)}
    parser = get_parser(file_type)
    chunks: list[JoinedChunk] = []
    alone, together = [], []
    for carrier in dict.fromkeys(carriers):  # in order of first appearance
        members = np.array([i for i, c in enumerate(carriers) if c == carrier], dtype=np.int64)
        mine = [datas[i] for i in members]
        joined = (
            parser.parse_many(mine, options[carrier])
            if hasattr(parser, "parse_many")
            else Joined({}, list(range(len(mine))), [])
        )
        for k, exc in joined.errors.items():
            out[members[k]].error = exc
        for chunk in joined.chunks:  # positions among this carrier's files -> in ``datas``
            chunks.append(
                JoinedChunk(
                    normalise(chunk.calls, options[carrier].dial_plan),  # as parsed_chunks does
                    members[chunk.files],
                    [(int(members[k]), p) for k, p in chunk.problems],
                )
            )
        for k in joined.alone:
            i = int(members[k])
            try:
                alone.append((i, list(parsed_chunks(io.BytesIO(datas[i]), file_type, options[carrier]))))
            except FormatError as exc:
                out[i].error = exc
        out_of_join = set(joined.errors) | set(joined.alone)
        together += [int(members[k]) for k in range(len(mine)) if k not in out_of_join]
    if alone:
        rules = [policy[carriers[i]] for i, _ in alone]
        for (i, _), checked in zip(alone, validate_together([c for _, c in alone], file_type, rules)):
            out[i].chunks = checked
    together.sort()
    if together:
        files = _together(
            chunks,
            together,
            np.array(carriers, dtype=object),
            np.asarray(file_ids, dtype=np.int64),
            file_type,
            kinds,
            [policy[c] for c in carriers],
        )
        for i in together:
            out[i].chunks = [files[i]]
    return out


def _together(
    chunks: list[JoinedChunk],
    members: list[int],
    carriers: np.ndarray,
    file_ids: np.ndarray,
    file_type: str,
    kinds: dict[str, str] | None,
    policies: list[Policy],
) -> dict[int, CheckedChunk]:
    n = len(file_ids)
    problems: dict[int, list[RowProblem]] = {i: [] for i in members}
    for chunk in chunks:
        for i, problem in chunk.problems:
            problems[i].append(problem)
    if chunks:
        calls = (
            pd.concat([c.calls for c in chunks], ignore_index=True)
            if len(chunks) > 1
            else chunks[0].calls.reset_index(drop=True)
        )
        owner = np.concatenate([c.files for c in chunks])
    else:
        calls, owner = None, np.zeros(0, dtype=np.int64)
    records = np.bincount(owner, minlength=n)

    hashes = owned_hashes(calls, owner) if len(owner) else None
    repeat = repeats(calls, hashes, owner) if len(owner) else np.zeros(0, dtype=bool)
    repeated = np.bincount(owner[repeat], minlength=n)
    pairs: dict[int, list[tuple[int, int]]] = {}
    if repeat.any():
        for i, pair in zip(owner[repeat], repeat_lines(calls, repeat, hashes, owner)):
            pairs.setdefault(int(i), []).append(pair)
    if repeat.any():
        calls, owner = calls[~repeat].reset_index(drop=True), owner[~repeat]

    summaries: list[list] = [[] for _ in range(n)]
    validated = set(np.unique(owner).tolist())  # files with rows to validate (a summary each)
    rejected = {i: list(found) for i, found in problems.items()}  # plus the rows failing the suite
    if len(owner):
        bad, summaries = validate_owned(calls, owner, n, file_type)
        summaries = [policies[i].label(s) for i, s in enumerate(summaries)]
        to_reject, flagged = _split(bad, owner, policies)
        if flagged:
            at = np.fromiter(flagged, dtype=np.int64, count=len(flagged))
            quality = calls["quality"].to_numpy(dtype=object, na_value=None).copy()
            quality[at] = [flagged[int(p)] for p in at]
            calls = calls.assign(quality=pd.array(quality, dtype=calls["quality"].dtype))
        if to_reject:
            positions = np.sort(np.fromiter(to_reject, dtype=np.int64, count=len(to_reject)))
            lines = calls["line_number"].to_numpy()[positions]
            texts = calls["raw_text"].to_numpy(dtype=object)[positions]
            for p, line, text in zip(positions, lines, texts):
                rejected[int(owner[p])].append(RowProblem(int(line), text, to_reject[int(p)]))
            keep = np.ones(len(owner), dtype=bool)
            keep[positions] = False
            calls, owner = calls[keep].reset_index(drop=True), owner[keep]

    if calls is not None:  # the raw text was only needed for rejected rows (memory)
        calls = calls.drop(columns=["raw_text"])
    spans = _spans(owner)
    frames = {i: calls.iloc[start:end] for i, (start, end) in spans.items()}
    batches = _batches(calls, owner, spans, frames, carriers, file_ids, kinds) if len(owner) and kinds else {}
    out = {}
    for i in members:
        frame = frames.get(i, calls.iloc[0:0] if calls is not None else pd.DataFrame())
        out[i] = CheckedChunk(
            frame,
            rejected[i],
            summaries[i] if i in validated else [],
            int(records[i]) + len(problems[i]),
            int(repeated[i]),
            batches.get(i),
            pairs.get(i, []),
        )
    return out


def _split(
    bad: dict[int, list[str]], owner: np.ndarray, policies: list[Policy]
) -> tuple[dict[int, list[str]], dict[int, str]]:
    """:meth:`Policy.split` of each failing row by its own file's policy (files of several
    carriers may be validated together)."""
    mine: dict[int, dict[int, list[str]]] = {}
    for p, reasons in bad.items():
        mine.setdefault(int(owner[p]), {})[p] = reasons
    to_reject: dict[int, list[str]] = {}
    flagged: dict[int, str] = {}
    for i, rows in mine.items():
        r, f = policies[i].split(rows)
        to_reject.update(r)
        flagged.update(f)
    return to_reject, flagged


def _spans(owner: np.ndarray) -> dict[int, tuple[int, int]]:
    """Where each file's rows are (each file's rows are next to each other)."""
    if not len(owner):
        return {}
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    ends = np.r_[starts[1:], len(owner)]
    spans = {int(owner[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
    if len(spans) != len(starts):
        raise AssertionError("a file's rows are not next to each other")
    return spans


def _batches(
    calls: pd.DataFrame,
    owner: np.ndarray,
    spans: dict[int, tuple[int, int]],
    frames: dict[int, pd.DataFrame],
    carriers: np.ndarray,
    file_ids: np.ndarray,
    kinds: dict[str, str],
) -> dict[int, Batch]:
    """Each file's COPY payloads (binary, per month, in primary key order), from one encoding
    of all rows; {} when a value needs the CSV payload (the loader then builds it per file)."""
    present = set(carriers[np.unique(owner)])
    carrier = present.pop() if len(present) == 1 else carriers[owner]  # one carrier: a constant
    rows = call_rows(calls, carrier, file_ids[owner], kinds)
    if rows is None:
        return {}
    day = utc_days(calls["start_time"])
    month = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    order = pc.sort_indices(
        pa.table(
            {
                "owner": owner,
                "month": month,
                "id": pa.array(calls["record_key"], from_pandas=True),
                "start": pa.array(calls["start_time"], from_pandas=True),
            }
        ),
        sort_keys=[("owner", "ascending"), ("month", "ascending"), ("id", "ascending"), ("start", "ascending")],
    )
    rows = rows.take(order)
    order = order.to_numpy()
    by_owner, by_month = owner[order], month[order]
    cuts = np.flatnonzero(np.r_[True, (by_owner[1:] != by_owner[:-1]) | (by_month[1:] != by_month[:-1])])
    ends = np.r_[cuts[1:], len(order)]
    payloads: dict[int, list] = {}
    for s, e in zip(cuts, ends):
        key = str(np.datetime64(int(by_month[s]), "M"))
        payloads.setdefault(int(by_owner[s]), []).append(
            (key, int(e - s), "binary", BinaryCopy(rows.slice(int(s), int(e - s))))
        )
    return {i: Batch(frames[i], day_counts(day[start:end]), payloads[i]) for i, (start, end) in spans.items()}
