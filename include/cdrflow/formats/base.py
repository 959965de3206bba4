"""The one interface every CDR format implements, and the canonical call it produces.

A parser turns a binary stream into :class:`Chunk` objects. Each chunk holds
- ``calls``: a DataFrame with exactly :data:`CANONICAL_COLUMNS` (use :func:`conform`),
  one row per record that parsed, plus the bookkeeping columns ``line_number`` (1-based
  line of the record in the file; with a header, the first record is line 2), ``raw_text``
  (the record as text, for the quarantine) and ``extras`` (JSON text: every source field
  that has no canonical column; build it with :func:`extras_json`);
- ``problems``: records that could not be turned into a call at all (too few columns, a
  date that does not parse, ...), each with its line number, raw text/bytes and reasons.
Parsers report per-row problems instead of raising; they raise :class:`FormatError` only when
the file as a whole is unusable (binary garbage, wrong format for the type, trailer count
mismatch), with a message that names the problem.

Rules: timestamps become UTC (``datetime64[us, UTC]``); local carrier times are converted with
``ParseOptions.timezone``; Gregorian seconds with :func:`gregorian_to_utc`. Chunks hold at most
``ParseOptions.chunk_rows`` records, so memory stays flat however large the file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

import numpy as np
import pandas as pd

from cdrflow.config.errors import CdrflowError

GREGORIAN_OFFSET = 62167219200  # Gregorian seconds - Unix seconds
TS = "datetime64[us, UTC]"

# name -> pandas dtype; the order is the order of the calls table's loaded columns
CANONICAL: dict[str, str] = {
    "carrier_call_id": "str",
    "start_time": TS,
    "other_leg_call_id": "str",
    "direction": "str",  # inbound | outbound
    "answer_time": TS,
    "end_time": TS,
    "duration_seconds": "Int64",
    "billing_seconds": "Int64",
    "ringing_seconds": "Int64",
    "caller_number": "str",
    "caller_name": "str",
    "callee_number": "str",
    "callee_name": "str",
    "from_uri": "str",
    "to_uri": "str",
    "hangup_cause": "str",
    "hangup_code": "Int64",  # SIP code
    "disposition": "str",
    "account_id": "str",
    "user_id": "str",
    "realm": "str",
    "authorizing_id": "str",
    "connection": "str",
    "tags": "str",  # PostgreSQL array literal text, e.g. {a,b}; use tags_literal()
    "call_type": "str",
    "call_sub_type": "str",
    "record_type": "str",  # complete | incomplete | error
    "extras": "str",  # JSON object text
}
BOOKKEEPING: dict[str, str] = {"line_number": "Int64", "raw_text": "str"}
CANONICAL_COLUMNS = list(CANONICAL)
FRAME_COLUMNS = CANONICAL_COLUMNS + list(BOOKKEEPING)


class FormatError(CdrflowError):
    """The file as a whole cannot be read as the declared type."""


@dataclass(frozen=True)
class ParseOptions:
    timezone: str = "UTC"  # IANA zone of local timestamps in the file
    encoding: str = "utf-8"  # utf-8 also accepts a BOM; latin-1 where a mapping says so
    chunk_rows: int = 100_000
    mapping: dict | None = None  # for the 'mapped' type: the parsed YAML mapping


@dataclass
class RowProblem:
    line_number: int
    raw_text: str
    reasons: list[str]
    raw_bytes: bytes | None = None  # exact bytes when they are not valid in the encoding


@dataclass
class Chunk:
    calls: pd.DataFrame
    problems: list[RowProblem] = field(default_factory=list)


class Parser(Protocol):
    name: str

    def parse(self, stream: BinaryIO, options: ParseOptions) -> Iterator[Chunk]: ...


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly FRAME_COLUMNS, in order, with their dtypes (missing -> NA)."""
    out = {}
    n = len(frame)
    for name, dtype in {**CANONICAL, **BOOKKEEPING}.items():
        if name in frame:
            col = frame[name]
        else:
            col = pd.Series([None] * n, index=frame.index, dtype="object")
        if name == "extras":
            col = col.fillna("{}") if name in frame else pd.Series(["{}"] * n, index=frame.index)
        out[name] = col.astype(dtype) if str(col.dtype) != dtype else col
    return pd.DataFrame(out, index=frame.index)


def _json_escape(col: pd.Series) -> pd.Series:
    s = col.astype("str")
    s = s.str.replace("\\", "\\\\", regex=False).str.replace('"', '\\"', regex=False)
    if s.str.contains(r"[\x00-\x1f]", regex=True, na=False).any():
        s = s.str.replace(r"[\x00-\x1f]", lambda m: f"\\u{ord(m.group(0)):04x}", regex=True)
    return s


def extras_json(frame: pd.DataFrame, index: pd.Index | None = None) -> pd.Series:
    """JSON object text per row from string columns (vectorised; NA/empty fields left out).

    Keys are the column names; values are JSON strings. For sources whose extras are nested
    or typed (JSON formats), build the text per row with ``json.dumps`` instead.
    """
    idx = frame.index if index is None else index
    if frame.shape[1] == 0:
        return pd.Series(["{}"] * len(idx), index=idx, dtype="str")
    parts = pd.Series([""] * len(idx), index=idx, dtype="str")
    for name in frame.columns:
        col = frame[name]
        present = col.notna() & (col.astype("str") != "")
        piece = ',"' + json.dumps(str(name))[1:-1] + '":"' + _json_escape(col.fillna("")) + '"'
        parts = parts + piece.where(present, "")
    return ("{" + parts.str.slice(1) + "}").astype("str")


def tags_literal(tags: list[str] | None) -> str | None:
    """A PostgreSQL text[] literal for a list of tags."""
    if not tags:
        return None
    return "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in tags) + "}"


def gregorian_to_utc(seconds: pd.Series) -> pd.Series:
    """Gregorian seconds (Unix + 62167219200) to UTC timestamps; non-numbers become NaT."""
    num = pd.to_numeric(seconds, errors="coerce") - GREGORIAN_OFFSET
    return pd.to_datetime(num, unit="s", utc=True, errors="coerce").astype(TS)


def local_to_utc(text: pd.Series, fmt: str | None, timezone: str) -> pd.Series:
    """Parse local timestamps in ``timezone`` to UTC (NaT where they do not parse).

    Non-existent local times (spring forward) shift forward; ambiguous ones (fall back) take
    the first occurrence: a CDR file gives no way to tell them apart.
    """
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    if getattr(parsed.dt, "tz", None) is None:
        parsed = parsed.dt.tz_localize(
            timezone, ambiguous=np.ones(len(parsed), dtype=bool), nonexistent="shift_forward"
        )
    return parsed.dt.tz_convert("UTC").astype(TS)


def invalid_bytes_marker(raw: bytes) -> str:
    """The extras value that keeps a line's exact bytes when they were not valid text."""
    return base64.b64encode(raw).decode("ascii")


def read_lines(
    stream: BinaryIO, options: ParseOptions, batch: int | None = None
) -> Iterator[list[tuple[int, bytes, str, bool]]]:
    """Batches of ``(line_number, raw_bytes, text, valid)`` from ``stream``.

    Strips a UTF-8 BOM and line ends (LF or CRLF); decodes with ``options.encoding``; a
    line with bytes invalid in that encoding is decoded with replacement characters and
    ``valid`` False, so the caller can keep its raw bytes. Empty lines are skipped.
    """
    batch = batch or options.chunk_rows
    out: list[tuple[int, bytes, str, bool]] = []
    encoding = options.encoding
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            text, valid = raw.decode(encoding), True
        except UnicodeDecodeError:
            text, valid = raw.decode(encoding, errors="replace"), False
        out.append((number, raw, text, valid))
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def looks_binary(head: bytes) -> bool:
    """True for bytes that are not text in any encoding a CDR file uses (NULs, control bytes)."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    control = sum(b < 32 and b not in (9, 10, 13) for b in head)
    return control / len(head) > 0.05
