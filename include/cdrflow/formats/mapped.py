"""The ``mapped`` type: any delimited or fixed-width layout described by a mapping file.

See :mod:`cdrflow.formats.mapping_schema` for the keys. The built-in formats telnyx_csv,
billing_feed_csv and freeswitch_csv are mappings too, kept in code next to their parsers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cdrflow.formats.arrow_text import (
    DST_KEY,
    dst_flags,
    empty_to_null,
    in_range,
    iter_blocks,
    json_objects,
    to_frame,
)
from cdrflow.formats.base import (
    Chunk,
    FormatError,
    ParseOptions,
    RowProblem,
    line_problem,
    looks_binary,
    with_flags,
)
from cdrflow.formats.conversions import seconds, tags, timestamps
from cdrflow.formats.delimited import DelimitedText
from cdrflow.formats.mapping_schema import check_mapping, load_mapping

__all__ = ["MappedParser", "load_mapping", "convert"]

TIME_FIELDS = ("start_time", "answer_time", "end_time")
SECONDS_FIELDS = ("duration_seconds", "billing_seconds", "ringing_seconds")
INT_FIELDS = SECONDS_FIELDS + ("hangup_code",)


class MappedParser:
    name = "mapped"

    def parse(self, stream: BinaryIO, options: ParseOptions) -> Iterator[Chunk]:
        if not options.mapping:
            raise FormatError("type 'mapped' needs a mapping file (the carrier's 'mapping')")
        mapping = check_mapping(options.mapping)
        options = ParseOptions(
            timezone=mapping.get("timezone", options.timezone),
            encoding=mapping.get("encoding", options.encoding),
            chunk_rows=options.chunk_rows,
            mapping=mapping,
        )
        if mapping.get("layout") == "fixed_width":
            yield from _fixed_width(stream, mapping, options)
            return
        if mapping.get("layout") == "xml":
            yield from _xml(stream, mapping, options)
            return
        reader = DelimitedText(
            delimiter=mapping.get("delimiter", ","),
            quotechar=mapping.get("quotechar", '"'),
            header=bool(mapping.get("header")),
            header_prefix=mapping.get("header_prefix", ""),
            skip_lines=int(mapping.get("skip_lines", 0)),
            comment_prefix=mapping.get("comment_prefix"),
            what=f"a file of this mapping ({mapping.get('description', 'mapped')})",
        )
        header, blocks = reader.read(stream, options)
        for rows in blocks:
            width = len(rows.columns) - 2
            given = mapping.get("names") or []
            if header and mapping.get("normalise_header"):
                header = [_normal(h) for h in header]
            names = header or [given[i] if i < len(given) else f"col_{i}" for i in range(width)]
            source = {names[i]: rows.columns[f"c{i}"] for i in range(width)}
            line_number, raw_text = rows.columns["line_number"], rows.columns["raw_text"]
            if "record_filter" in mapping:  # only matching lines are records; others are skipped
                spec = mapping["record_filter"]
                column = _source(spec["source"], source, None, len(rows), False, "record_filter")
                keep = pc.fill_null(pc.match_substring_regex(column, spec["pattern"]), False)
                source = {k: pc.filter(v, keep) for k, v in source.items()}
                line_number, raw_text = pc.filter(line_number, keep), pc.filter(raw_text, keep)
            calls, problems = convert(
                source,
                line_number,
                raw_text,
                mapping,
                options,
                positional=[f"c{i}" for i in range(width)],
                printable=rows.printable,
            )
            yield Chunk(with_flags(calls, rows.flags), rows.problems + problems)


def _fixed_width(stream: BinaryIO, mapping: dict, options: ParseOptions) -> Iterator[Chunk]:
    head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
    if looks_binary(head):
        raise FormatError("binary data, not a fixed-width CDR file")
    record = mapping.get("record_filter", {}).get("pattern")
    trailer = mapping.get("trailer")
    records, declared, seen = 0, None, False
    for block in iter_blocks(stream, options):
        broken: list[RowProblem] = []
        flags: dict[int, str] = {}
        if isinstance(block, list):  # lines that are not text are quarantined, the rest read
            texts, numbers_kept = [], []
            for number, raw in block:
                text, problem, flag = line_problem(number, raw, options.encoding)
                if problem is None:
                    texts.append(text)
                    numbers_kept.append(number)
                    if flag is not None:
                        flags[number] = flag
                elif not record or re.search(record, text):
                    broken.append(problem)
            seen = seen or bool(block)
            records += len(broken)
            lines = pa.array(texts, pa.string())
            numbers = np.array(numbers_kept, dtype=np.int64)
        else:
            lines = pc.cast(block.lines, pa.string())
            numbers = np.arange(len(lines), dtype=np.int64) + block.first_line
        seen = seen or len(lines) > 0
        if trailer:
            is_trailer = pc.match_substring_regex(lines, trailer["pattern"]).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(is_trailer):
                text = lines[int(i)].as_py()
                count = text[trailer["count"]["start"] : trailer["count"]["end"]].strip()
                if not count.isdigit():
                    raise FormatError(f"trailer on line {numbers[i]} has no record count: {count!r}")
                declared = int(count)
        keep = pc.match_substring_regex(lines, record) if record else pc.greater(pc.utf8_length(lines), 0)
        lines, numbers = lines.filter(keep), numbers[keep.to_numpy(zero_copy_only=False)]
        records += len(lines)
        source = {
            name: pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(lines, spec["start"], spec["end"]))
            for name, spec in mapping["columns"].items()
            if isinstance(spec, dict) and "start" in spec
        }
        calls, problems = convert(source, pa.array(numbers, pa.int64()), lines, mapping, options, fixed=True)
        yield Chunk(with_flags(calls, flags), broken + problems)
    if not seen:
        raise FormatError("empty file")
    if trailer and declared is None:
        raise FormatError("the file has no trailer line with its record count")
    if trailer and declared != records:
        raise FormatError(f"trailer says {declared} records but the file holds {records}")


def _leaves(element, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path relative to the record, text) of every element without children."""
    for child in element:
        path = f"{prefix}{child.tag}"
        if len(child):
            yield from _leaves(child, path + "/")
        elif child.text and child.text.strip():
            yield path, child.text.strip()


def _xml(stream: BinaryIO, mapping: dict, options: ParseOptions) -> Iterator[Chunk]:
    """One record per ``record`` element, streamed with iterparse (elements are cleared)."""
    import xml.etree.ElementTree as ET

    record_tag = mapping["record"]
    pattern = mapping.get("record_filter")
    rows: list[dict[str, str]] = []
    numbers: list[int] = []
    texts: list[str] = []
    position = 0

    def flush() -> Chunk:
        names = sorted({k for r in rows for k in r})
        source = {name: pa.array([r.get(name, "") for r in rows], pa.string()) for name in names}
        for name in mapping["columns"].values():
            for part in name if isinstance(name, list) else [name]:
                if isinstance(part, str) and part not in source:
                    source[part] = pa.array([""] * len(rows), pa.string())
        calls, problems = convert(source, pa.array(numbers, pa.int64()), pa.array(texts, pa.string()), mapping, options)
        return Chunk(calls, problems)

    try:
        for _, element in ET.iterparse(stream, events=("end",)):
            if element.tag != record_tag:
                continue
            position += 1
            values = dict(_leaves(element))
            if not pattern or re.search(pattern["pattern"], values.get(pattern["source"], "")):
                rows.append(values)
                numbers.append(position)
                texts.append(ET.tostring(element, encoding="unicode"))
            element.clear()
            if len(rows) >= options.chunk_rows:
                yield flush()
                rows, numbers, texts = [], [], []
    except ET.ParseError as exc:
        raise FormatError(f"not well-formed XML after record {position}: {exc}") from None
    if position == 0:
        raise FormatError(f"no <{record_tag}> records in the file")
    if rows:
        yield flush()


def _source(spec, source: dict[str, pa.Array], positional: list[str] | None, n: int, fixed: bool, field: str):
    if fixed:
        return source[field]
    if isinstance(spec, list):  # alternative names: the first the file has
        for name in spec:
            if name in source:
                return source[name]
        raise FormatError(f"no column for {field}: the file has none of {', '.join(map(str, spec))}")
    if isinstance(spec, dict) and "join" in spec:
        parts = [_source(p, source, positional, n, False, field) for p in spec["join"]]
        return pc.binary_join_element_wise(*parts, spec.get("sep", ""))
    if isinstance(spec, int):
        name = list(source)[spec] if spec < len(source) else None
        if name is None:
            raise FormatError(f"mapping names column {spec} for {field}, but lines have {len(source)} columns")
        return source[name]
    if spec not in source:
        raise FormatError(f"mapping names column {spec!r} for {field}, but the header has {', '.join(source)}")
    return source[spec]


def convert(
    source: dict[str, pa.Array],
    line_number: pa.Array,
    raw_text: pa.Array,
    mapping: dict,
    options: ParseOptions,
    *,
    positional: list[str] | None = None,
    fixed: bool = False,
    printable: bool = False,
) -> tuple[pd.DataFrame, list[RowProblem]]:
    """Canonical frame and per-row problems from source columns, by ``mapping``."""
    n = len(line_number)
    columns_spec = mapping["columns"]
    out: dict[str, pa.Array] = {}
    raw_values: dict[str, pa.Array] = {}
    optional = set(mapping.get("optional", ()))
    for field, spec in columns_spec.items():
        try:
            raw_values[field] = _source(spec, source, positional, n, fixed, field)
        except FormatError:
            if field not in optional:
                raise
    for field, value in mapping.get("constants", {}).items():
        raw_values[field] = pa.array([str(value)] * n, pa.string())
    for field, table in mapping.get("value_maps", {}).items():
        if field in raw_values:
            value = pc.utf8_trim_whitespace(raw_values[field])
            for src, replacement in table.items():
                value = pc.if_else(pc.equal(value, str(src)), str(replacement), value)
            raw_values[field] = value
    unit = mapping.get("duration_unit", "seconds")
    formats = mapping.get("timestamp_formats", {})
    failed = np.zeros(n, dtype=bool)
    reasons: dict[int, list[str]] = {}
    far: dict[str, np.ndarray] = {}  # time field -> rows whose value is out of range
    dst: dict[str, pa.Array | None] = {}

    def check(field: str, parsed: pa.Array, text: pa.Array, required: bool) -> None:
        empty = pc.equal(pc.fill_null(pc.utf8_trim_whitespace(text), ""), "")
        bad = pc.and_(pc.is_null(parsed), pa.array(np.ones(n, dtype=bool)) if required else pc.invert(empty))
        for i in np.flatnonzero(bad.to_numpy(zero_copy_only=False)):
            failed[i] = True
            what = "out of range" if field in far and far[field][i] else "unparseable"
            reasons.setdefault(int(i), []).append(
                f"parse:{field}:{what} {text[int(i)].as_py()!r}"
                if text[int(i)].is_valid and text[int(i)].as_py().strip()
                else f"parse:{field}:missing"
            )

    def within_range(field: str, parsed: pa.Array) -> pa.Array:
        parsed, far_rows = in_range(parsed)
        if far_rows is not None:
            far[field] = far_rows if field not in far else far[field] | far_rows
        return parsed

    for field, text in raw_values.items():
        if field in TIME_FIELDS:
            parsed, dst[field] = timestamps(
                text, formats.get(field, mapping.get("timestamp_format", "iso8601")), options.timezone
            )
            out[field] = within_range(field, parsed)
            check(field, out[field], text, field == "start_time")
        elif field in INT_FIELDS:
            out[field] = seconds(text, unit if field in SECONDS_FIELDS else "seconds")
            check(field, out[field], text, False)
        elif field == "tags":
            out[field] = pa.array([tags(v) for v in text.to_pylist()], pa.string())
        else:
            out[field] = empty_to_null(pc.utf8_trim_whitespace(text))
    if "carrier_call_id" in out:
        check("carrier_call_id", out["carrier_call_id"], raw_values["carrier_call_id"], True)
        out["record_key"] = _record_key(mapping.get("key") or ["carrier_call_id"], out, raw_values, source)
        if mapping.get("call"):
            out["call_key"] = _call_key(mapping["call"], out, raw_values, source)
    derive = mapping.get("derive", {})
    duration = out.get("duration_seconds")
    if derive.get("start_time") == "end_minus_duration" and duration is not None:
        span = pc.cast(pc.multiply(duration, 1_000_000), pa.duration("us"))  # (durations fit: see _seconds)
        out["start_time"] = within_range("start_time", pc.subtract(out["end_time"], span))
        check("start_time", out["start_time"], raw_values.get("end_time", pa.nulls(n, pa.string())), True)
    if derive.get("end_time") == "start_plus_duration" and duration is not None:
        span = pc.cast(pc.multiply(duration, 1_000_000), pa.duration("us"))
        out["end_time"] = within_range("end_time", pc.add(out["start_time"], span))

    def seconds_between(later: str, earlier: str) -> pa.Array:
        span = pc.cast(pc.cast(pc.subtract(out[later], out[earlier]), pa.duration("us")), pa.int64())
        return pc.cast(pc.round(pc.divide(pc.cast(span, pa.float64(), safe=False), 1e6)), pa.int64())

    if derive.get("duration_seconds") == "end_minus_start":
        out["duration_seconds"] = seconds_between("end_time", "start_time")
    if derive.get("billing_seconds") == "end_minus_answer":
        out["billing_seconds"] = seconds_between("end_time", "answer_time")
    mapped_sources = {s for s in columns_spec.values() if isinstance(s, str)}
    mapped_sources |= {name for s in columns_spec.values() if isinstance(s, list) for name in s}
    mapped_sources |= {list(source)[s] for s in columns_spec.values() if isinstance(s, int) and s < len(source)}
    for spec in columns_spec.values():
        if isinstance(spec, dict) and "join" in spec:
            mapped_sources |= {p if isinstance(p, str) else list(source)[p] for p in spec["join"]}
    extras = {name: col for name, col in source.items() if name not in mapped_sources and not fixed}
    flags = dst_flags(dst)
    if flags is not None:
        extras[DST_KEY] = flags
    out["extras"] = json_objects(extras, n, printable=printable)
    out["line_number"] = line_number
    out["raw_text"] = pc.cast(raw_text, pa.string())
    problems = [RowProblem(int(line_number[i].as_py()), raw_text[i].as_py(), reasons[i]) for i in sorted(reasons)]
    keep = pa.array(~failed)
    kept = {k: pc.filter(v, keep) for k, v in out.items()}
    return to_frame(kept, int((~failed).sum())), problems


def _parts(
    names: list[str | int],
    out: dict[str, pa.Array],
    raw_values: dict[str, pa.Array],
    source: dict[str, pa.Array],
    what: str = "key",
) -> list[pa.Array]:
    """The values ``key`` or ``call`` names: a canonical field (its value as read: text, before
    conversion, so that a repeat has the same key), a source column, or a column's position."""
    parts = []
    for name in names:
        if isinstance(name, int):
            if name >= len(source):
                raise FormatError(f"mapping {what} names column {name}, but lines have {len(source)} columns")
            part = source[list(source)[name]]
        elif name == "carrier_call_id":
            part = out[name]  # trimmed, as stored
        elif name in raw_values:
            part = raw_values[name]
        elif name in source:
            part = source[name]
        else:
            raise FormatError(
                f"mapping {what} names {name!r}, which is neither a mapped field nor a column of the file"
            )
        parts.append(pc.fill_null(pc.cast(part, pa.string()), ""))
    return parts


def _call_key(
    names: list[str | int], out: dict[str, pa.Array], raw_values: dict[str, pa.Array], source: dict[str, pa.Array]
) -> pa.Array:
    """The mapping's ``call``: the named values joined with ``|``; a record whose values are
    all empty is its own call (its ``carrier_call_id``)."""
    parts = [pc.utf8_trim_whitespace(p) for p in _parts(names, out, raw_values, source, "call")]
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "|")
    empty = pc.equal(parts[0], "")
    for part in parts[1:]:
        empty = pc.and_(empty, pc.equal(part, ""))
    return pc.if_else(empty, out["carrier_call_id"], joined)


def _record_key(
    names: list[str | int], out: dict[str, pa.Array], raw_values: dict[str, pa.Array], source: dict[str, pa.Array]
) -> pa.Array:
    """The mapping's ``key``: the values :func:`_parts` finds, joined with ``|``."""
    parts = _parts(names, out, raw_values, source)
    if len(parts) == 1:
        return out["carrier_call_id"] if names == ["carrier_call_id"] else parts[0]
    return pc.binary_join_element_wise(*parts, "|")


def _normal(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


class BuiltinMappingParser:
    """A format defined by a mapping kept in code (the carrier's time zone and encoding apply)."""

    name = "builtin"
    mapping: dict = {}

    def parse(self, stream: BinaryIO, options: ParseOptions) -> Iterator[Chunk]:
        own = ParseOptions(
            timezone=options.timezone, encoding=options.encoding, chunk_rows=options.chunk_rows, mapping=self.mapping
        )
        for chunk in MappedParser().parse(stream, own):
            yield self.finish(chunk)

    def finish(self, chunk: Chunk) -> Chunk:
        return chunk


def answered_legs(frame: pd.DataFrame) -> pd.DataFrame:
    """record_type from billing seconds, ringing seconds from duration - billing seconds."""
    billed = frame["billing_seconds"].fillna(0) > 0
    out = frame.assign(ringing_seconds=(frame["duration_seconds"] - frame["billing_seconds"]).astype("Int64"))
    if out["record_type"].isna().all():
        out["record_type"] = billed.map({True: "complete", False: "incomplete"}).astype(frame["record_type"].dtype)
    return out
