"""Value conversions of the ``mapped`` type (see :mod:`cdrflow.formats.mapped`): timestamps in
every ``timestamp_format``, durations in every ``duration_unit``, tag lists. Vectorised on
Arrow; a value that does not convert becomes null (the caller reports the row)."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cdrflow.formats.arrow_text import empty_to_null, strict_strptime, to_utc
from cdrflow.formats.base import GREGORIAN_OFFSET, tags_literal

_GO = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def timestamps(text: pa.Array, fmt: str, timezone: str) -> tuple[pa.Array, pa.Array | None]:
    """UTC timestamps (null where a value does not parse) and :func:`to_utc`'s clock-change flags."""
    text = empty_to_null(pc.utf8_trim_whitespace(text))
    if fmt in ("unix", "unix_ms", "gregorian"):
        number = pc.cast(pc.if_else(pc.match_substring_regex(text, r"^-?\d+(\.\d+)?$"), text, None), pa.float64())
        if fmt == "gregorian":
            number = pc.subtract(number, GREGORIAN_OFFSET)
        micros = pc.multiply(number, 1000.0 if fmt == "unix_ms" else 1_000_000.0)
        beyond = pc.or_(pc.less(micros, -(2.0**62)), pc.greater(micros, 2.0**62))  # int64 holds no more
        micros = pc.if_else(pc.fill_null(beyond, False), _FAR_MICROS, micros)
        return pc.cast(pc.cast(pc.round(micros), pa.int64()), pa.timestamp("us", tz="UTC")), None
    if fmt == "iso8601":
        parsed = pd.to_datetime(pd.Series(text.to_pylist(), dtype=object), format="ISO8601", utc=True, errors="coerce")
        return pa.array(parsed.astype("datetime64[us, UTC]")), None
    if fmt.endswith(".%f"):  # Arrow's strptime has no %f: parse the seconds, add the fraction
        parts = pc.extract_regex(text, r"^(?P<base>[^.]+)(?:\.(?P<frac>\d{1,6}))?$")
        base = pc.struct_field(parts, [0])
        frac = pc.utf8_rpad(pc.fill_null(pc.struct_field(parts, [1]), ""), 6, "0")
        whole, flags = timestamps(base, fmt[:-3], timezone)
        micros = pc.cast(pc.cast(frac, pa.int64()), pa.duration("us"))
        return pc.add(whole, micros), flags
    parsed = strict_strptime(text, fmt)
    if parsed.type.tz is not None:  # the format carried an offset (%z)
        return pc.cast(parsed, pa.timestamp("us", tz="UTC")), None
    return to_utc(parsed, timezone)


_FAR_MICROS = float(2**62)  # a value beyond int64 microseconds: far out of range, reported so


def _go_seconds(value: str | None) -> float | None:
    match = _GO.match(value or "")
    if not value or not match:
        return None
    h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def seconds(text: pa.Array, unit: str) -> pa.Array:
    text = empty_to_null(pc.utf8_trim_whitespace(text))
    if unit == "go":
        values = {v: _go_seconds(v) for v in pc.unique(text).to_pylist()}
        seconds = pa.array([values.get(v) for v in text.to_pylist()], pa.float64())
    elif unit == "hhmmsscc":
        ok = pc.match_substring_regex(text, r"^\d{8}$")
        digits = pc.if_else(ok, text, None)

        def part(a: int, b: int) -> pa.Array:
            return pc.cast(pc.utf8_slice_codeunits(digits, a, b), pa.float64())

        seconds = pc.add(
            pc.add(pc.multiply(part(0, 2), 3600.0), pc.multiply(part(2, 4), 60.0)),
            pc.add(part(4, 6), pc.divide(part(6, 8), 100.0)),
        )
    else:
        ok = pc.match_substring_regex(text, r"^-?\d+(\.\d+)?$")
        seconds = pc.cast(pc.if_else(ok, text, None), pa.float64())
        if unit == "ms":
            seconds = pc.divide(seconds, 1000.0)
    seconds = pc.if_else(pc.fill_null(pc.greater(pc.abs(seconds), 2.0**31), False), None, seconds)  # no duration
    return pc.cast(pc.round(seconds), pa.int64())


def tags(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    return tags_literal([t.strip() for t in re.split(r"[,;|]", value) if t.strip()])
