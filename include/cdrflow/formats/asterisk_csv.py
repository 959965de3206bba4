"""Asterisk ``cdr_csv`` Master.csv.

Layout (Asterisk ``cdr/cdr_csv.c``, ``build_csv_record``): no header, every field quoted,
in this order:

    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
    start, answer, end, duration, billsec, disposition, amaflags

followed by the optional trailing columns that ``cdr.conf`` turns on, each on its own, always in
this order: ``uniqueid`` (``loguniqueid``), ``userfield`` (``loguserfield``), then ``peeraccount``,
``linkedid``, ``sequence`` together (``newcdrcolumns``). A file may therefore have 16 to 21 columns
per line, and its count says which columns it has (:func:`trailing_columns`): 18 is uniqueid and
userfield (``cdr.conf.sample``'s setting), 19 the three newer ones alone, 21 all of them. 17 and 20
are uniqueid *or* userfield (with the newer three for 20): the file's first values of that column
tell, a uniqueid being ``[systemname-]<epoch>.<n>`` (``1774744200.42``).
Timestamps are local server time (``%Y-%m-%d %H:%M:%S``) in ``ParseOptions.timezone`` (clock
changes: see :func:`~cdrflow.formats.arrow_text.to_utc`); one outside 1900..2199 rejects its row.

Canonical mapping: uniqueid -> carrier_call_id (without uniqueid, ``channel@start`` is the
only stable key and is used instead), accountcode -> account_id, src -> caller_number,
dst -> callee_number, the name part of clid (``"Name" <number>``) -> caller_name,
start/answer/end -> start_time/answer_time/end_time, duration -> duration_seconds,
billsec -> billing_seconds, duration - billsec -> ringing_seconds, disposition as is,
record_type ``complete`` for ANSWERED calls and ``incomplete`` otherwise. Every other
column (dcontext, clid, channel, dstchannel, lastapp, lastdata, amaflags, userfield,
peeraccount, linkedid, sequence) goes to extras under its Asterisk name.

Record identity (``record_key``): one channel writes several records with one ``uniqueid``
and one ``start`` (``Dial(SIP/301&SIP/200)`` forks, queues, ``Local/`` chains, transfers), so
the call id alone does not tell records apart:

- with a ``sequence`` column (19 to 21 columns) that is not empty: ``uniqueid#sequence`` (Asterisk
  numbers every record it writes);
- otherwise (16 to 18 columns): ``uniqueid|dstchannel|lastapp|lastdata|disposition|duration|billsec``,
  the fields in which the records of one channel differ (each forked leg has its own
  ``dstchannel``, e.g. ``SIP/301-0000000a``) and which a true repeat, the same line again, has
  alike. Records that agree in all of them are one record.

Call (``call_key``): ``linkedid`` where the column exists and is not empty (Asterisk gives
every channel of one call, ``Local/`` halves, queue members, transfer targets, the ``linkedid`` of
the channel that started it), else the ``uniqueid`` (the call id above). ``linkedid`` also stays
in extras.

``uniqueid`` here is the call id as above (``channel@start`` without one). A ``systemname-``
prefix appearing mid-file changes the key: those records are new ones, and load.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdrflow.formats.arrow_text import (
    DST_KEY,
    dst_flags,
    empty_to_null,
    in_range,
    integers,
    json_objects,
    strict_strptime,
    to_frame,
    to_utc,
)
from cdrflow.formats.base import Chunk, FormatError, ParseOptions, RowProblem, with_flags
from cdrflow.formats.delimited import DelimitedText
from cdrflow.formats.joined import Joined, parse_joined

# cdr_csv's columns in file order (Asterisk's cdr_csv.c); the optional ones follow when enabled.
BASE_COLUMNS = (
    "accountcode src dst dcontext clid channel dstchannel lastapp lastdata start answer end duration billsec "
    "disposition amaflags"
).split()
OPTIONAL_COLUMNS = "uniqueid userfield peeraccount linkedid sequence".split()
ALL_COLUMNS = BASE_COLUMNS + OPTIONAL_COLUMNS
# Columns read into canonical ones; every other source column is kept in calls.extras.
CANONICAL_SOURCES = set("accountcode src dst start answer end duration billsec disposition uniqueid".split())
EXTRA_COLUMNS = [c for c in ALL_COLUMNS if c not in CANONICAL_SOURCES]
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_MIN, _MAX = len(BASE_COLUMNS), len(ALL_COLUMNS)


class AsteriskCsvParser:
    name = "asterisk_csv"

    def parse(
        self, stream: BinaryIO, options: ParseOptions, *, width: int | None = None, unique: bool | None = None
    ) -> Iterator[Chunk]:
        """``width``: the column count, when the caller knows it (joined files, see parse_many);
        ``unique``: whether a file of 17 or 20 columns has a uniqueid there (None: its values tell)."""
        reader = DelimitedText(
            what="an Asterisk Master.csv",
            width_check=_width if width is None else _fixed(width),
            fast_only=width is not None,
        )
        _, blocks = reader.read(stream, options)
        for at, rows in enumerate(blocks):
            width = len(rows.columns) - 2
            if at == 0 and width == _CUSTOM_WIDTH and _is_cdr_custom(rows.columns):
                raise FormatError(CDR_CUSTOM)
            if unique is None and width in _EITHER:  # the file's first values of the column tell
                unique = _look_unique(rows.columns[f"c{_MIN}"].to_pylist())
            names = BASE_COLUMNS + trailing_columns(width, unique is not False)
            columns = {names[i]: rows.columns[f"c{i}"] for i in range(width)}
            columns["line_number"] = rows.columns["line_number"]
            columns["raw_text"] = rows.columns["raw_text"]
            calls, more = _canonical(columns, options, rows.printable)
            yield Chunk(calls=with_flags(calls, rows.flags), problems=rows.problems + more)

    def parse_many(self, datas: list[bytes], options: ParseOptions) -> Joined:
        """Many small files parsed as one stream (:mod:`cdrflow.formats.joined`): every line
        is a record of its own; files are joined by column count, each checked alone first."""
        return parse_joined(
            datas,
            options,
            lambda data: _file_layout(data, options),
            lambda layout, stream: self.parse(stream, options, width=layout[0], unique=layout[1]),
        )


def _file_layout(data: bytes, options: ParseOptions) -> tuple[int, bool | None]:
    """The column count parsing ``data`` alone would use, and for 17 or 20 columns whether the
    17th is a uniqueid (from the first lines); FormatError as parsing it would."""
    found: list[int] = []

    def check(widths: list[int]) -> int:
        found.append(_width(widths))
        return found[0]

    DelimitedText(what="an Asterisk Master.csv", width_check=check).read(io.BufferedReader(io.BytesIO(data)), options)
    if found[0] not in _EITHER:
        return found[0], None
    head = data[:65536].decode(options.encoding, "replace").splitlines()[:100]
    return found[0], _look_unique(f[_MIN] for f in csv.reader(head) if len(f) == found[0])


# cdr_custom.conf.sample's Master.csv has 19 columns too, clid first: its 14th column is the
# disposition, where cdr_csv's has billsec. Such a file is refused whole with what to do instead
# (every row would be refused on its times otherwise).
_CUSTOM_WIDTH = _MIN + 3
_DISPOSITIONS = pa.array(["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"])
CDR_CUSTOM = (
    "not cdr_csv's Master.csv: this is the layout of Asterisk's cdr_custom.conf.sample (clid first, "
    "the disposition in the 14th column); load it as type mapped with mappings/asterisk_cdr_custom.yaml"
)


def _is_cdr_custom(columns: dict[str, pa.Array]) -> bool:
    """Whether most rows hold a disposition in the 14th column (cdr_custom's sample layout)."""
    found = pc.sum(pc.is_in(columns["c13"], value_set=_DISPOSITIONS)).as_py() or 0
    return found * 2 > len(columns["c13"]) > 0


# the column counts whose 17th column is either the uniqueid or the userfield
_EITHER = (_MIN + 1, _MAX - 1)
_UNIQUEID = re.compile(r"(?:.+-)?\d{9,}\.\d+")  # [systemname-]epoch.sequence, as Asterisk makes them


def trailing_columns(width: int, unique: bool = True) -> list[str]:
    """The names of the columns after ``amaflags`` in a file of ``width`` columns (16 to 21);
    ``unique``: for 17 and 20, whether the first of them is the uniqueid (else the userfield)."""
    newer = OPTIONAL_COLUMNS[2:] if width >= _MIN + 3 else []
    own = {0: [], 1: ["uniqueid" if unique else "userfield"], 2: OPTIONAL_COLUMNS[:2]}[width - _MIN - len(newer)]
    return own + newer


def _look_unique(values: Iterable[str]) -> bool | None:
    """Whether most of the first (up to 100) values that are not empty look like Asterisk
    uniqueids; None without any (the column reads the same as either then: empty)."""
    first = [v for _, v in zip(range(100), (v for v in values if v))]
    return sum(bool(_UNIQUEID.fullmatch(v)) for v in first) * 2 > len(first) if first else None


def _fixed(width: int) -> Callable[[list[int]], int]:
    """A width check that knows the answer already (files joined by column count)."""
    return lambda _widths: width


def _width(widths: list[int]) -> int:
    """The file's column count (16 to 21), from its first lines."""
    fitting = [w for w in widths if _MIN <= w <= _MAX]
    if not fitting:
        raise FormatError(
            f"not an Asterisk Master.csv: the first lines have {sorted(set(widths))} "
            f"columns, a Master.csv line has {_MIN} to {_MAX}"
        )
    return max(set(fitting), key=fitting.count)


def _clid_name(clid: pa.Array) -> pa.Array:
    """The name part of a caller id like ``"Alice" <1001>`` (null without a ``<number>``)."""
    first = pc.list_element(pc.split_pattern(clid, "<", max_splits=1), 0)
    name = pc.utf8_trim(pc.utf8_trim_whitespace(first), '"')
    return empty_to_null(pc.if_else(pc.match_substring(clid, "<"), name, None))


def _canonical(cols: dict[str, pa.Array], options: ParseOptions, printable: bool = False):
    n = len(cols["line_number"])
    far: dict[str, np.ndarray] = {}  # source column -> rows whose time is out of range
    dst: dict[str, pa.Array | None] = {}

    def timestamp(name: str, field: str) -> pa.Array:
        parsed, far_rows = in_range(strict_strptime(cols[name], TIME_FORMAT))
        if far_rows is not None:
            far[name] = far_rows
        utc, dst[field] = to_utc(parsed, options.timezone)
        return utc

    start, answer, end = (
        timestamp("start", "start_time"),
        timestamp("answer", "answer_time"),
        timestamp("end", "end_time"),
    )
    duration, billsec = integers(cols["duration"]), integers(cols["billsec"])
    checks = [
        ("start_time", start, "start", True),
        ("answer_time", answer, "answer", False),
        ("end_time", end, "end", True),
        ("duration_seconds", duration, "duration", True),
        ("billing_seconds", billsec, "billsec", True),
    ]
    failed = pa.array(np.zeros(n, dtype=bool))
    for _, parsed, source, required in checks:
        bad = pc.is_null(parsed) if required else pc.and_(pc.is_null(parsed), pc.not_equal(cols[source], ""))
        failed = pc.or_(failed, bad)
    problems: list[RowProblem] = []
    if pc.any(failed).as_py():
        for i in np.flatnonzero(failed.to_numpy(zero_copy_only=False)):
            reasons = [
                f"parse:{name}:{'out of range' if source in far and far[source][i] else 'unparseable'} "
                f"{cols[source][i].as_py()!r}"
                for name, parsed, source, required in checks
                if not parsed[i].is_valid and (required or cols[source][i].as_py() != "")
            ]
            problems.append(RowProblem(cols["line_number"][i].as_py(), cols["raw_text"][i].as_py(), reasons))

    unique = cols.get("uniqueid")
    fallback = pc.binary_join_element_wise(cols["channel"], cols["start"], "@")
    call_id = fallback if unique is None else pc.if_else(pc.equal(unique, ""), fallback, unique)
    record_key = _record_key(cols, call_id, duration, billsec)
    linked = cols.get("linkedid")
    call_key = call_id if linked is None else pc.if_else(pc.equal(linked, ""), call_id, linked)
    extras_cols = {c: cols[c] for c in EXTRA_COLUMNS if c in cols}
    flags = dst_flags(dst)
    if flags is not None:
        extras_cols[DST_KEY] = flags
    keep = pc.invert(failed) if problems else None
    out = {
        "carrier_call_id": call_id,
        "record_key": record_key,
        "call_key": call_key,
        "start_time": start,
        "answer_time": answer,
        "end_time": end,
        "duration_seconds": duration,
        "billing_seconds": billsec,
        "ringing_seconds": pc.subtract(duration, billsec),
        "caller_number": empty_to_null(cols["src"]),
        "caller_name": _clid_name(cols["clid"]),
        "callee_number": empty_to_null(cols["dst"]),
        "disposition": empty_to_null(cols["disposition"]),
        "account_id": empty_to_null(cols["accountcode"]),
        "record_type": pc.if_else(pc.equal(cols["disposition"], "ANSWERED"), "complete", "incomplete"),
        "extras": json_objects(extras_cols, n, printable=printable),
        "line_number": cols["line_number"],
        "raw_text": cols["raw_text"],
    }
    kept = out if keep is None else {k: pc.filter(v, keep) for k, v in out.items()}
    return to_frame(kept, len(kept["line_number"])), problems


def _record_key(cols: dict[str, pa.Array], call_id: pa.Array, duration: pa.Array, billsec: pa.Array) -> pa.Array:
    """What makes one record unique (module docstring), vectorised."""
    n = len(call_id)

    def text(values: pa.Array) -> pa.Array:
        return pc.fill_null(pc.cast(values, pa.string()), "")

    fallback = pc.binary_join_element_wise(
        call_id,
        *(text(cols[c]) if c in cols else pa.array([""] * n, pa.string()) for c in _FALLBACK_FIELDS),
        text(cols["disposition"]),
        text(duration),
        text(billsec),
        "|",
    )
    sequence = cols.get("sequence")
    if sequence is None:
        return fallback
    numbered = pc.binary_join_element_wise(call_id, sequence, "#")
    return pc.if_else(pc.equal(sequence, ""), fallback, numbered)


_FALLBACK_FIELDS = ("dstchannel", "lastapp", "lastdata")
