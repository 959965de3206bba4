"""Asterisk ``cdr_csv`` Master.csv.

Layout (Asterisk ``cdr/cdr_csv.c``, ``build_csv_record``): no header, every field quoted,
in this order:

    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
    start, answer, end, duration, billsec, disposition, amaflags

followed by the optional trailing columns that ``cdr.conf``/newer versions add, always in this
order: ``uniqueid`` (loguniqueid), ``userfield`` (loguserfield), ``peeraccount``,
``linkedid``, ``sequence``. A file may therefore have 16 to 21 columns per line.
Timestamps are local server time (``%Y-%m-%d %H:%M:%S``) in ``ParseOptions.timezone``.

Canonical mapping: uniqueid -> carrier_call_id (without uniqueid, ``channel@start`` is the
only stable key and is used instead), accountcode -> account_id, src -> caller_number,
dst -> callee_number, the name part of clid (``"Name" <number>``) -> caller_name,
start/answer/end -> start_time/answer_time/end_time, duration -> duration_seconds,
billsec -> billing_seconds, duration - billsec -> ringing_seconds, disposition as is,
record_type ``complete`` for ANSWERED calls and ``incomplete`` otherwise. Every other
column (dcontext, clid, channel, dstchannel, lastapp, lastdata, amaflags, userfield,
peeraccount, linkedid, sequence) goes to extras under its Asterisk name.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cdrflow.formats.arrow_text import Block, empty_to_null, integers, iter_blocks, json_objects, to_frame, to_utc
from cdrflow.formats.base import Chunk, FormatError, ParseOptions, RowProblem, invalid_bytes_marker, looks_binary

BASE_COLUMNS = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel",
                "lastapp", "lastdata", "start", "answer", "end", "duration", "billsec",
                "disposition", "amaflags"]
OPTIONAL_COLUMNS = ["uniqueid", "userfield", "peeraccount", "linkedid", "sequence"]
ALL_COLUMNS = BASE_COLUMNS + OPTIONAL_COLUMNS
EXTRA_COLUMNS = ["dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata", "amaflags",
                 "userfield", "peeraccount", "linkedid", "sequence"]
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_CLID_NAME = r'^\s*"?(?P<name>[^"<]*?)"?\s*<[^>]*>\s*$'
_MIN, _MAX = len(BASE_COLUMNS), len(ALL_COLUMNS)


class AsteriskCsvParser:
    name = "asterisk_csv"

    def parse(self, stream: BinaryIO, options: ParseOptions) -> Iterator[Chunk]:
        head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
        if looks_binary(head):
            raise FormatError("binary data, not an Asterisk Master.csv text file")
        width: int | None = None
        seen_lines = False
        for block in iter_blocks(stream, options):
            if isinstance(block, list):  # bytes invalid in the encoding somewhere in this block
                if not block:
                    continue
                seen_lines = True
                if width is None:
                    width = _detect_width([raw.decode(options.encoding, "replace") for _, raw in block[:20]])
                columns, problems, markers = _careful(block, width, options)
            else:
                if len(block.lines) == 0:
                    continue
                seen_lines = True
                if width is None:
                    width = _detect_width([v.decode("utf-8") for v in block.lines.slice(0, 20).to_pylist()])
                parsed = _fast(block, width)
                if parsed is None:  # a record spanning lines or a skipped row we cannot place
                    raws = [(block.first_line + i, v) for i, v in enumerate(block.lines.to_pylist()) if v.strip()]
                    columns, problems, markers = _careful(raws, width, options)
                else:
                    columns, problems = parsed
                    markers = None
            calls, more = _canonical(columns, options, markers)
            yield Chunk(calls=calls, problems=problems + more)
        if not seen_lines:
            raise FormatError("empty file")


def _fields(line: str) -> list[str]:
    """One line split as CSV; a line the csv module cannot read counts as no fields."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return []


def _detect_width(first_lines: list[str]) -> int:
    """The file's column count (16 to 21), from its first lines."""
    sample = [line for line in first_lines if line.strip()]
    if sample and sample[0].lstrip().startswith(("{", "[")):
        raise FormatError("this is JSON, not an Asterisk Master.csv (wrong type for the file?)")
    widths = [len(_fields(line)) for line in sample]
    fitting = [w for w in widths if _MIN <= w <= _MAX]
    if not fitting:
        raise FormatError(f"not an Asterisk Master.csv: the first lines have {sorted(set(widths))} "
                          f"columns, a Master.csv line has {_MIN} to {_MAX}")
    return max(set(fitting), key=fitting.count)


def _read(data: bytes, width: int, threads: bool, bad: dict[int | None, tuple[int, str]]) -> pa.Table:
    def handler(row) -> str:
        bad[row.number] = (row.actual_columns, row.text)
        return "skip"

    names = ALL_COLUMNS[:width]
    return pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=threads),
        parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False))


def _fast(block: Block, width: int) -> tuple[dict[str, pa.Array], list[RowProblem]] | None:
    bad: dict[int | None, tuple[int, str]] = {}
    try:
        table = _read(block.data, width, True, bad)
        if None in bad:  # multi-threaded parsing does not know row numbers: parse again in order
            bad.clear()
            table = _read(block.data, width, False, bad)
    except pa.ArrowInvalid:
        return None
    lengths = pc.binary_length(block.lines).to_numpy(zero_copy_only=False)
    present = np.flatnonzero(lengths > 0)
    bad_index = np.array(sorted(n - 1 for n in bad), dtype=np.int64)
    keep = np.setdiff1d(present, bad_index, assume_unique=True)
    if len(keep) != table.num_rows:
        return None
    problems = [RowProblem(block.first_line + n - 1, text,
                           [f"parse:column_count:expected {width}, got {count}"])
                for n, (count, text) in sorted(bad.items())]
    columns = {name: table[name].combine_chunks() for name in table.column_names}
    columns["line_number"] = pa.array(keep + block.first_line, pa.int64())
    columns["raw_text"] = pc.cast(block.lines.take(pa.array(keep)), pa.string())
    return columns, problems


def _careful(lines: list[tuple[int, bytes]], width: int, options: ParseOptions
             ) -> tuple[dict[str, pa.Array], list[RowProblem], dict[int, str]]:
    """Line by line: for blocks with bytes invalid in the encoding, or records that span lines."""
    rows, numbers, texts, problems, markers = [], [], [], [], {}
    for number, raw in lines:
        try:
            text, valid = raw.decode(options.encoding), True
        except UnicodeDecodeError:
            text, valid = raw.decode(options.encoding, errors="replace"), False
        fields = _fields(text)
        if len(fields) != width:
            problems.append(RowProblem(number, text, [f"parse:column_count:expected {width}, got {len(fields)}"],
                                       None if valid else raw))
            continue
        if not valid:
            markers[len(rows)] = invalid_bytes_marker(raw)
        rows.append(fields)
        numbers.append(number)
        texts.append(text)
    names = ALL_COLUMNS[:width]
    columns = {name: pa.array([r[i] for r in rows], pa.string()) for i, name in enumerate(names)}
    columns["line_number"] = pa.array(numbers, pa.int64())
    columns["raw_text"] = pa.array(texts, pa.string())
    return columns, problems, markers


def _canonical(cols: dict[str, pa.Array], options: ParseOptions, markers: dict[int, str] | None):
    n = len(cols["line_number"])
    tz = options.timezone

    def timestamp(name: str) -> pa.Array:
        return to_utc(pc.strptime(cols[name], format=TIME_FORMAT, unit="s", error_is_null=True), tz)

    start, answer, end = timestamp("start"), timestamp("answer"), timestamp("end")
    duration, billsec = integers(cols["duration"]), integers(cols["billsec"])
    checks = [("start_time", start, "start", True), ("answer_time", answer, "answer", False),
              ("end_time", end, "end", True), ("duration_seconds", duration, "duration", True),
              ("billing_seconds", billsec, "billsec", True)]
    failed = pa.array(np.zeros(n, dtype=bool))
    for _, parsed, source, required in checks:
        bad = pc.is_null(parsed) if required else pc.and_(pc.is_null(parsed), pc.not_equal(cols[source], ""))
        failed = pc.or_(failed, bad)
    problems: list[RowProblem] = []
    if pc.any(failed).as_py():
        for i in np.flatnonzero(failed.to_numpy(zero_copy_only=False)):
            reasons = [f"parse:{name}:unparseable {cols[source][i].as_py()!r}"
                       for name, parsed, source, required in checks
                       if not parsed[i].is_valid and (required or cols[source][i].as_py() != "")]
            problems.append(RowProblem(cols["line_number"][i].as_py(), cols["raw_text"][i].as_py(), reasons))

    unique = cols.get("uniqueid")
    fallback = pc.binary_join_element_wise(cols["channel"], cols["start"], "@")
    call_id = fallback if unique is None else pc.if_else(pc.equal(unique, ""), fallback, unique)
    extras_cols = {c: cols[c] for c in EXTRA_COLUMNS if c in cols}
    if markers:
        extras_cols["_invalid_bytes_b64"] = pa.array([markers.get(i) for i in range(n)], pa.string())
    keep = pc.invert(failed)
    out = {
        "carrier_call_id": call_id,
        "start_time": start,
        "answer_time": answer,
        "end_time": end,
        "duration_seconds": duration,
        "billing_seconds": billsec,
        "ringing_seconds": pc.subtract(duration, billsec),
        "caller_number": empty_to_null(cols["src"]),
        "caller_name": empty_to_null(pc.struct_field(pc.extract_regex(cols["clid"], _CLID_NAME), [0])),
        "callee_number": empty_to_null(cols["dst"]),
        "disposition": empty_to_null(cols["disposition"]),
        "account_id": empty_to_null(cols["accountcode"]),
        "record_type": pc.if_else(pc.equal(cols["disposition"], "ANSWERED"), "complete", "incomplete"),
        "extras": json_objects(extras_cols, n),
        "line_number": cols["line_number"],
        "raw_text": cols["raw_text"],
    }
    kept = {k: pc.filter(v, keep) for k, v in out.items()}
    return to_frame(kept, len(kept["line_number"])), problems
