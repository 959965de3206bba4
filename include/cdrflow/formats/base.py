"""The one interface every CDR format implements, and the canonical call it produces.

A parser turns a binary stream into :class:`Chunk` objects. Each chunk holds
- ``calls``: a DataFrame with exactly :data:`CANONICAL_COLUMNS` (use :func:`conform`),
  one row per record that parsed, plus the bookkeeping columns ``line_number`` (1-based
  line of the record in the file; with a header, the first record is line 2), ``raw_text``
  (the record as text, for the quarantine) and ``extras`` (JSON text: every source field
  that has no canonical column; build it with
  :func:`cdrflow.formats.arrow_text.json_objects`, or ``json.dumps`` per row for JSON sources);
- ``problems``: records that could not be turned into a call at all (too few columns, a
  date that does not parse, ...), each with its line number, raw text/bytes and reasons.
Parsers report per-row problems instead of raising; they raise :class:`FormatError` only when
the file as a whole is unusable (binary garbage, wrong format for the type, trailer count
mismatch), with a message that names the problem.

Record identity: ``record_key`` is what makes one record unique in its format (the primary
key of ``calls`` is carrier, record_key, start_time; every duplicate check uses it), while
``carrier_call_id`` is the call, which several records (legs, forks) may share. A parser that
sets no ``record_key`` gets its ``carrier_call_id`` (one record per call id: FreeSWITCH
``uuid``, Kazoo ``call_id``, Telnyx leg id, billing feed ``id``); Asterisk builds its own, and
a mapping names it with ``key:``. A true repeat (the same record again) must get the same key.

Rules: timestamps become UTC (``datetime64[us, UTC]``); local carrier times are converted with
``ParseOptions.timezone`` (:func:`cdrflow.formats.arrow_text.to_utc`, which flags clock-change
times); Gregorian seconds are Unix + :data:`GREGORIAN_OFFSET`; a time outside
:data:`~cdrflow.formats.arrow_text.EARLIEST` .. ``LATEST`` is a row problem, never an exception.
Text is read in blocks of whole lines (:func:`cdrflow.formats.arrow_text.iter_blocks`); a line
whose bytes are not text is a row problem (:func:`line_problem`). Chunks hold at most
``ParseOptions.chunk_rows`` records, so memory stays flat however large the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol

import numpy as np
import pandas as pd

from cdrflow.config.errors import CdrflowError

if TYPE_CHECKING:
    from cdrflow.formats.dial_plan import DialPlan

GREGORIAN_OFFSET = 62167219200  # Gregorian seconds - Unix seconds
TS = "datetime64[us, UTC]"

# name -> pandas dtype; the order is the order of the calls table's loaded columns
CANONICAL: dict[str, str] = {
    "carrier_call_id": "str",  # the call: several records (legs) may share it
    "record_key": "str",  # what makes one record of its format unique (module docstring)
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
    "call_key": "str",  # the call the leg belongs to (legs of one call share it; default: carrier_call_id)
    "caller_e164": "str",  # set by cdrflow.formats.numbering after parsing, never by a parser
    "callee_e164": "str",
    "caller_number_type": "str",
    "callee_number_type": "str",
    "quality": "str",  # JSON array of the flag-severity checks the row failed; set by validation
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
    dial_plan: DialPlan | None = None  # the carrier's, for the E.164 numbers (formats/numbering.py)


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
    """``frame`` with exactly FRAME_COLUMNS, in order, with their dtypes (missing -> NA; a
    missing ``record_key`` is the ``carrier_call_id``: one record per call id)."""
    out = {}
    n = len(frame)
    for name, dtype in {**CANONICAL, **BOOKKEEPING}.items():
        if name in ("record_key", "call_key") and name not in frame and "carrier_call_id" in frame:
            col = frame["carrier_call_id"]
        elif name in frame:
            col = frame[name]
        else:
            col = pd.Series([None] * n, index=frame.index, dtype="object")
        if name == "extras":
            col = col.fillna("{}") if name in frame else pd.Series(["{}"] * n, index=frame.index)
        out[name] = col.astype(dtype) if str(col.dtype) != dtype else col
    return pd.DataFrame(out, index=frame.index)


def tags_literal(tags: list[str] | None) -> str | None:
    """A PostgreSQL text[] literal for a list of tags."""
    if not tags:
        return None
    return "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in tags) + "}"


ENCODING_FLAG = "parse:encoding"  # prefix of the quality flag of a line read as Latin-1


def line_problem(number: int, raw: bytes, encoding: str) -> tuple[str, RowProblem | None, str | None]:
    """A line's text, the problem that keeps it out of the warehouse, and a quality flag.

    - NUL bytes: PostgreSQL text cannot hold them; the line is quarantined with its exact bytes.
    - Bytes not valid in ``encoding`` (a caller name typed on a Latin-1 phone in a UTF-8
      Master.csv): the line is read as Latin-1 instead and loads, flagged (the third value, for
      ``calls.quality``). Latin-1 gives every byte a character of its own, so nothing is lost or
      replaced: the same bytes always read the same (a repeat is still a repeat), and a later
      UTF-8 copy of the same name reads the same text. The raw store keeps the bytes anyway. A
      wrong ``encoding`` setting shows as flagged rows at once.
    """
    try:
        text = raw.decode(encoding)
        flag = None
    except UnicodeDecodeError as exc:
        text = raw.decode("latin-1")
        flag = f"{ENCODING_FLAG}:not valid {encoding} (byte 0x{raw[exc.start : exc.start + 1].hex()} at {exc.start + 1}), read as latin-1"
    if "\x00" in text:
        return (
            text,
            RowProblem(number, text, [f"parse:nul_bytes:{text.count(chr(0))} NUL byte(s) in the line"], raw),
            None,
        )
    return text, None, flag


def with_flags(frame: pd.DataFrame, flags: dict[int, str]) -> pd.DataFrame:
    """``frame`` with ``flags`` (line number -> a quality flag of the parser) in its ``quality``
    column, as a JSON array (the validation adds its own flags to it)."""
    if not flags or not len(frame):
        return frame
    lines = frame["line_number"].to_numpy()
    at = np.flatnonzero(np.isin(lines, np.fromiter(flags, dtype=np.int64, count=len(flags))))
    if not len(at):
        return frame
    quality = frame["quality"].to_numpy(dtype=object, na_value=None).copy()
    quality[at] = [json.dumps([flags[int(lines[p])]]) for p in at]
    return frame.assign(quality=pd.array(quality, dtype=frame["quality"].dtype))


_TEXT_CONTROL = bytes(range(32)).translate(None, b"\t\n\r")
_NOT_TEXT_CONTROL = bytes(b for b in range(256) if b not in _TEXT_CONTROL)


def looks_binary(head: bytes) -> bool:
    """True for bytes that are not text in any encoding a CDR file uses: more than 5% control
    bytes (NUL included). A few NULs in a text file are a broken line, quarantined by itself."""
    if not head:
        return False
    return len(head.translate(None, _NOT_TEXT_CONTROL)) / len(head) > 0.05
