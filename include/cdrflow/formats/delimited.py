"""Delimited text (CSV and its cousins) read on Arrow, with exact line numbers and problems.

Every text format with a delimiter goes through :class:`DelimitedText`: the file is read in
blocks of whole lines (:func:`~cdrflow.formats.arrow_text.iter_blocks`), each block parsed by
``pyarrow.csv`` straight from bytes into string columns ``c0, c1, ...``. Rows whose column
count is wrong become :class:`RowProblem` objects with their physical line numbers; header,
skipped and comment lines are dropped. Blocks that are not valid in the file's encoding, hold
NUL bytes or a quoted value spanning lines take a careful line-by-line path with the csv module,
where a line whose bytes are not text is quarantined with its exact bytes (:func:`line_problem`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cdrflow.formats.arrow_text import Block, has_control_bytes, iter_blocks
from cdrflow.formats.base import FormatError, ParseOptions, RowProblem, line_problem, looks_binary

# a quoted value may span this many lines at most (a record that long is not a CDR)
MAX_SPAN_LINES = 50
_OPEN = object()  # (a record whose quoted value is still open where the lines given end)


class NotFast(Exception):
    """A block needs the careful line-by-line path, and the reader was told not to take it."""


@dataclass
class Rows:
    """One block's records: string columns c0..c{width-1} plus line_number and raw_text."""

    columns: dict[str, pa.Array]
    problems: list[RowProblem]
    printable: bool = False  # no value holds a control character (tab, NUL, ...)
    flags: dict[int, str] = field(default_factory=dict)  # line -> quality flag (read as latin-1)

    def __len__(self) -> int:
        return len(self.columns["line_number"])


@dataclass
class DelimitedText:
    delimiter: str = ","
    quotechar: str | None = '"'
    header: bool = False
    header_prefix: str = ""  # e.g. ':' when the header line is marked (CGRateS)
    skip_lines: int = 0  # lines before the header / first record
    comment_prefix: str | None = None
    what: str = "a CSV file"  # the layout, for messages
    width_check: Callable[[list[int]], int] | None = None  # picks the width from the first lines
    fast_only: bool = False  # raise NotFast instead of taking the careful path (joined files)

    def names(self, width: int) -> list[str]:
        return [f"c{i}" for i in range(width)]

    def fields(self, line: str) -> list[str]:
        """One line split with this dialect; a line the csv module cannot read has no fields."""
        try:
            return next(
                csv.reader(
                    [line],
                    delimiter=self.delimiter,
                    quotechar=self.quotechar or "\x00",
                    quoting=csv.QUOTE_MINIMAL if self.quotechar else csv.QUOTE_NONE,
                ),
                [],
            )
        except csv.Error:
            return []

    def read(self, stream: BinaryIO, options: ParseOptions) -> tuple[list[str] | None, Iterator[Rows]]:
        """The header's names (or None) and the blocks of records."""
        head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
        if looks_binary(head):
            raise FormatError(f"binary data, not {self.what}")
        blocks = iter_blocks(stream, options)
        state: dict = {"header": None, "width": None, "first": None}
        first_block = next(blocks, None)
        if first_block is None:
            raise FormatError("empty file")
        self._start(first_block, options, state)
        return state["header"], self._rows(first_block, blocks, options, state)

    def _lines_of(self, block) -> list[tuple[int, str]]:
        if isinstance(block, list):
            return [(n, raw.decode("utf-8", "replace")) for n, raw in block[:40]]
        texts = [v.decode("utf-8") for v in block.lines.slice(0, 40).to_pylist()]
        return [(block.first_line + i, t) for i, t in enumerate(texts)]

    def _ignored(self, number: int, text: str, state: dict) -> bool:
        return (
            number <= self.skip_lines
            or (state["first"] is not None and number < state["first"])
            or not text.strip()
            or bool(self.comment_prefix and text.startswith(self.comment_prefix))
        )

    def _start(self, block, options: ParseOptions, state: dict) -> None:
        lines = [
            (n, t)
            for n, t in self._lines_of(block)
            if n > self.skip_lines and t.strip() and not (self.comment_prefix and t.startswith(self.comment_prefix))
        ]
        if not lines:
            raise FormatError("no records in the file" if self.header is False else "no header line")
        if lines[0][1].lstrip().startswith(("{", "[")):
            raise FormatError(f"this is JSON, not {self.what} (wrong type for the file?)")
        if self.header:
            number, text = lines[0]
            names = self.fields(text[len(self.header_prefix) :] if text.startswith(self.header_prefix) else text)
            state["header"] = [n.strip() for n in names]
            state["width"] = len(names)
            state["first"] = number + 1
        else:
            widths = [len(self.fields(t)) for _, t in lines[:20]]
            state["width"] = self.width_check(widths) if self.width_check else max(set(widths), key=widths.count)
            state["first"] = lines[0][0]
        if not state["width"]:
            raise FormatError(f"not {self.what}: its first lines cannot be split into fields")

    def _rows(self, first_block, blocks, options: ParseOptions, state: dict) -> Iterator[Rows]:
        block = first_block
        open_record: list[tuple[int, bytes]] = []  # a quoted value still open at a block's end
        while block is not None:
            rows = None if isinstance(block, list) or open_record else self._fast(block, state)
            if rows is not None:
                yield rows
                block = next(blocks, None)
                continue
            if self.fast_only:
                raise NotFast(f"a block of {self.what} needs the careful line-by-line path")
            lines = open_record + (
                block
                if isinstance(block, list)
                else [(block.first_line + i, v) for i, v in enumerate(block.lines.to_pylist())]
            )
            block = next(blocks, None)
            rows, open_record = self._careful(lines, options, state, more=block is not None)
            yield rows

    def _arrow(self, data: bytes, width: int, threads: bool, bad: dict) -> pa.Table:
        def handler(row) -> str:
            bad[row.number] = (row.actual_columns, row.text)
            return "skip"

        names = self.names(width)
        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=threads),
            parse_options=pacsv.ParseOptions(
                delimiter=self.delimiter, quote_char=self.quotechar or False, invalid_row_handler=handler
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    def _fast(self, block: Block, state: dict) -> Rows | None:
        width = state["width"]
        bad: dict = {}
        try:
            table = self._arrow(block.data, width, True, bad)
            if None in bad:  # multi-threaded parsing does not know row numbers: parse again in order
                bad.clear()
                table = self._arrow(block.data, width, False, bad)
        except pa.ArrowInvalid:
            return None
        if self.quotechar and (self._ends_open(block) or (bad and self._opens_quotes(block))):
            # Arrow ends a row at every line break, even inside quotes: a record whose quoted
            # value spans lines would load cut short and its other lines be refused. The lines
            # after the break hardly ever have the record's width, so only a block with refused
            # lines is searched for a line that leaves a quote open, and the last line of each
            # (a record may go on in the next block).
            return None
        lengths = pc.binary_length(block.lines).to_numpy(zero_copy_only=False)
        present = np.flatnonzero(lengths > 0)
        bad_index = np.array(sorted(n - 1 for n in bad), dtype=np.int64)
        parsed = np.setdiff1d(present, bad_index, assume_unique=True)
        if len(parsed) != table.num_rows:
            return None  # a quoted value spanning lines: let the careful path sort it out
        numbers = parsed + block.first_line
        ignore = numbers < state["first"]
        if self.comment_prefix:
            comment = pc.starts_with(
                pc.cast(block.lines.take(pa.array(parsed)), pa.string()), self.comment_prefix
            ).to_numpy(zero_copy_only=False)
            ignore |= comment
        keep = ~ignore
        problems = [
            RowProblem(block.first_line + n - 1, text, [f"parse:column_count:expected {width}, got {count}"])
            for n, (count, text) in sorted(bad.items())
            if not self._ignored(block.first_line + n - 1, text, state)
        ]
        columns = {name: table[name].combine_chunks() for name in table.column_names}
        if not keep.all():  # (filtering copies every column)
            mask = pa.array(keep)
            columns = {name: pc.filter(column, mask) for name, column in columns.items()}
        columns["line_number"] = pa.array(numbers[keep], pa.int64())
        columns["raw_text"] = pc.cast(block.lines.take(pa.array(parsed[keep])), pa.string())
        return Rows(columns, problems, printable=not has_control_bytes(block.data))

    def _careful(
        self, lines: list[tuple[int, bytes]], options: ParseOptions, state: dict, more: bool = False
    ) -> tuple[Rows, list[tuple[int, bytes]]]:
        """Line by line, for blocks that are not valid in the encoding, hold NUL bytes or a
        quoted value spanning lines: a line whose bytes are not text is quarantined with its
        exact bytes. A record whose quoted value holds line breaks (CSV allows it; Asterisk's
        cdr_csv writes a ``userfield`` or ``lastdata`` as it is) is read whole from the lines it
        spans (:meth:`_spanning`), under the number of its first line. ``more``: another block
        follows; the lines of a record still open at the end are returned, for it."""
        width = state["width"]
        rows: list[list[str]] = []
        numbers: list[int] = []
        texts: list[str] = []
        problems: list[RowProblem] = []
        flags: dict[int, str] = {}
        at = 0
        while at < len(lines):
            number, raw = lines[at]
            at += 1
            raw = raw.rstrip(b"\r")
            text, problem, flag = line_problem(number, raw, options.encoding)
            if self._ignored(number, text, state):
                continue
            if problem is not None:
                problems.append(problem)
                continue
            whole = self._spanning(lines, at - 1, options.encoding, width) if self._opens_quote(text) else None
            if whole is _OPEN and more:  # the rest of the record is in the next block
                return self._rows_of(rows, numbers, texts, problems, flags, width), lines[at - 1 :]
            if isinstance(whole, tuple):
                text, values, flag, spanned = whole
                at += spanned - 1
            else:  # (csv reads a line that leaves a quote open alone, cut at its end)
                values = self.fields(text)
            if flag is not None:
                flags[number] = flag
            if len(values) != width:
                problems.append(RowProblem(number, text, [f"parse:column_count:expected {width}, got {len(values)}"]))
                continue
            rows.append(values)
            numbers.append(number)
            texts.append(text)
        return self._rows_of(rows, numbers, texts, problems, flags, width), []

    def _ends_open(self, block: Block) -> bool:  # (for a dialect with a quote character)
        """Whether ``block`` may end inside a quoted value: its last line that is not blank
        leaves a quote open (Arrow reads such a quote through the blank lines after it to the
        block's end, and blank lines are no records: nothing else would show it)."""
        for at in range(len(block.lines) - 1, -1, -1):
            line = block.lines[at].as_py()
            if line.strip():
                return line.count(str(self.quotechar).encode()) % 2 == 1
        return False

    def _opens_quotes(self, block: Block) -> bool:  # (for a dialect with a quote character)
        """Whether a line of ``block`` leaves a quoted value open (see :meth:`_opens_quote`)."""
        counts = pc.count_substring(block.lines, str(self.quotechar))
        return bool(pc.any(pc.equal(pc.bit_wise_and(counts, 1), 1)).as_py())

    def _opens_quote(self, text: str) -> bool:
        """Whether ``text`` leaves a quoted value open (an odd number of quote characters: an
        escaped quote is written twice)."""
        return bool(self.quotechar) and text.count(self.quotechar) % 2 == 1  # type: ignore[arg-type]

    def _spanning(
        self, lines: list[tuple[int, bytes]], start: int, encoding: str, width: int
    ) -> tuple[str, list[str], str | None, int] | object | None:
        """The record that starts at ``lines[start]`` and whose quoted value goes on over the next
        lines: its text (line breaks kept), its ``width`` fields, its quality flag, and how many
        lines it spans. :data:`_OPEN` when ``lines`` end first (fewer than
        :data:`MAX_SPAN_LINES`); None when the quote does not close within that many lines, a
        line on the way is not text, or the record then has the wrong width: the lines are then
        read one by one, as they were before such records were read whole."""
        texts: list[str] = []
        flag = None
        quotes = 0
        for number, raw in lines[start : start + MAX_SPAN_LINES]:
            text, problem, line_flag = line_problem(number, raw.rstrip(b"\r"), encoding)
            if problem is not None:
                return None
            flag = flag or line_flag
            texts.append(text)
            quotes += text.count(self.quotechar or "")
            if quotes % 2 == 0:
                whole = "\n".join(texts)
                values = self.fields(whole)
                return (whole, values, flag, len(texts)) if len(values) == width else None
        return _OPEN if len(texts) < MAX_SPAN_LINES else None

    def _rows_of(
        self,
        rows: list[list[str]],
        numbers: list[int],
        texts: list[str],
        problems: list[RowProblem],
        flags: dict[int, str],
        width: int,
    ) -> Rows:
        columns = {name: pa.array([r[i] for r in rows], pa.string()) for i, name in enumerate(self.names(width))}
        columns["line_number"] = pa.array(numbers, pa.int64())
        columns["raw_text"] = pa.array(texts, pa.string())
        return Rows(columns, problems, flags=flags)
