"""Many small line-oriented files parsed as one stream, their rows handed back per file.

A day of a thousand files of a thousand calls costs, parsed one by one, mostly the fixed cost
of a parse (some seventy Arrow calls and a DataFrame per file): more than the calls themselves.
For formats whose every line is a record on its own (no header, no trailer, no state between
lines), parsing the files one after another in one stream gives the same rows and problems as
parsing each alone. :func:`parse_joined` does that and maps every row and problem back to its
file and its line in that file.

What keeps the result the same as parsing each file alone:
- each file's whole-file checks (binary data, empty, wrong format, its column count) run on
  the file by itself first (``key_of``); only files whose checks give the same answer (key)
  are joined, and the joined stream is parsed with that answer instead of guessing again;
- a file not valid in the encoding, holding NUL bytes or ending in a bare carriage return, is
  parsed alone;
- each file starts on a line of its own (a missing last line end is added) and loses its BOM;
- the joined parse may only take the fast path (``NotFast``): where a block would need the
  careful line-by-line path (a quoted value spanning lines), its files are parsed alone.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd

from cdrflow.formats.base import Chunk, FormatError, ParseOptions, RowProblem
from cdrflow.formats.delimited import NotFast

BOM = b"\xef\xbb\xbf"

K = TypeVar("K", bound=Hashable)  # what groups files that can be joined (e.g. their column count)


@dataclass
class JoinedChunk:
    """Rows of several files: ``calls`` as a parser gives them, with ``line_number`` the line
    in the row's own file; ``files[i]`` is the position (in the list given) of row i's file."""

    calls: pd.DataFrame
    files: np.ndarray
    problems: list[tuple[int, RowProblem]] = field(default_factory=list)  # (file position, problem)


@dataclass
class Joined:
    errors: dict[int, FormatError]  # file position -> why it cannot be read as a whole
    alone: list[int]  # files to parse by themselves
    chunks: list[JoinedChunk]


def parse_joined(
    datas: list[bytes],
    options: ParseOptions,
    key_of: Callable[[bytes], K],
    parse: Callable[[K, io.BufferedReader], Iterator[Chunk]],
) -> Joined:
    """Parse ``datas`` (whole small files) joined, per group of files with the same key.

    ``key_of(data)`` runs a file's whole-file checks and returns what the parse of the joined
    stream needs to know (e.g. the column count); it raises :class:`FormatError` as parsing
    the file alone would. ``parse(key, stream)`` parses a joined stream; it must raise
    :class:`NotFast` rather than take a path whose result could depend on the neighbouring file.
    """
    joined = Joined({}, [], [])
    groups: dict[K, list[int]] = {}
    for i, data in enumerate(datas):
        if not _joinable(data, options.encoding):
            joined.alone.append(i)
            continue
        try:
            key = key_of(data)
        except FormatError as exc:
            joined.errors[i] = exc
            continue
        groups.setdefault(key, []).append(i)
    for key, members in groups.items():
        try:
            joined.chunks += _parse_group(datas, members, key, parse)
        except (NotFast, FormatError):  # (each file passed its own checks: parse them alone)
            joined.alone += members
    joined.alone.sort()
    return joined


def _joinable(data: bytes, encoding: str) -> bool:
    if data.endswith(b"\r") or b"\x00" in data:  # (NUL lines take the careful path)
        return False
    try:
        data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _parse_group(datas, members: list[int], key, parse) -> list[JoinedChunk]:
    parts, offsets = [], [0]  # offsets[k]: lines of the joined stream before file k
    for i in members:
        data = datas[i][len(BOM) :] if datas[i].startswith(BOM) else datas[i]
        if not data.endswith(b"\n"):
            data += b"\n"
        parts.append(data)
        offsets.append(offsets[-1] + data.count(b"\n"))
    bounds = np.array(offsets, dtype=np.int64)
    positions = np.array(members, dtype=np.int64)
    out = []
    for chunk in parse(key, io.BufferedReader(io.BytesIO(b"".join(parts)))):
        calls = chunk.calls
        lines = calls["line_number"].to_numpy(dtype=np.int64)
        member = np.searchsorted(bounds, lines, side="left") - 1
        calls["line_number"] = pd.array(lines - bounds[member], dtype="Int64")
        problems = []
        for p in chunk.problems:
            k = int(np.searchsorted(bounds, p.line_number, side="left")) - 1
            problems.append(
                (int(positions[k]), RowProblem(p.line_number - int(bounds[k]), p.raw_text, p.reasons, p.raw_bytes))
            )
        out.append(JoinedChunk(calls, positions[member], problems))
    return out
