"""Validation of canonical calls with Great Expectations (GX Core 1.x, inside the task).

The suites are JSON files in ``include/cdrflow/validation/expectations/``, reviewed like code: the
canonical call (``canonical_call.json``) plus one file per format with its additions. A
suite is built once per process and day (GX setup is slow; ``{now+1d}`` in a suite is the
day after validation) and run on each chunk as a runtime DataFrame.

Row-level results come from GX's unexpected-index output keyed by our ``line_number``
column, so every failing row is named with the expectations it failed, e.g.
``expect_column_values_to_be_between(duration_seconds)``. What a failure costs the row (reject,
flag, fail the file) is not decided here: see :mod:`cdrflow.validation.policy`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from cdrflow.config.severities import SUITES, expectation_name, suite_config
from cdrflow.validation import gx_run_cache
from cdrflow.validation.gx_import import import_great_expectations

# the suites' catalogue lives in config: carrier and mapping files are checked against it when read
__all__ = ["SUITES", "expectation_name", "suite_config"]

log = logging.getLogger(__name__)


def _quiet() -> None:
    """GX's INFO/WARNING chatter on every context and run, off (one of its modules sets its own
    level when imported, so this runs again after the import)."""
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.ERROR)


_quiet()
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no phoning home (there is no internet)
# Great Expectations itself is imported when the first suite is built (_validation_definition),
# not with this module: importing it takes seconds (scipy and all its expectations), which every
# process paid before it read a byte. warm_up() builds the suite in a thread while the file is
# being registered and read.

_LOCK = threading.Lock()


SAMPLE = 20  # unexpected values (and their line numbers) kept per check and file: GX's partial_unexpected_count


@dataclass
class ValidationSummary:
    expectation: str
    success: bool
    unexpected_count: int
    column: str | None = None
    severity: str = "reject"  # what failing it costs a row (set by the policy, cdrflow.validation.policy)
    # What the file's Data Docs page needs of this check (cdrflow.validation.data_docs): GX's
    # configuration of it ({"type", "kwargs", "missing": whether GX counts missing rows}) and
    # the summary of its result (see segment_details).
    config: dict | None = None
    detail: dict | None = None


@dataclass
class ChunkValidation:
    bad_rows: dict[int, list[str]]  # line_number -> names of failed expectations
    summary: list[ValidationSummary]
    # check name -> positions of its unexpected rows (GX's unexpected_index_list): what
    # validating several files (or chunks) together needs to give each its own result summary
    unexpected: dict[str, list] = field(default_factory=dict)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


# Timestamps are handed to GX as seconds since the epoch and nullable integers as floats: its
# pandas engine compares datetimes and extension-type values one by one in Python (seconds
# per million rows), plain numbers as whole columns.
TIME_COLUMNS = ("start_time", "answer_time", "end_time")


def _fill(value, today: date):
    if value == "{now+1d}":
        return (datetime.combine(today, datetime.min.time(), UTC) + timedelta(days=2)).timestamp()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]+\+00:00", value):
        return datetime.fromisoformat(value).timestamp()
    return value


@lru_cache(maxsize=16)
def columns(file_type: str) -> list[str]:
    """The columns the suite looks at, plus line_number (GX hashes every column it is given)."""
    used = {"line_number"}
    for entry in suite_config(file_type):
        used.update(v for k, v in entry["kwargs"].items() if k == "column" or k.startswith("column_"))
    return sorted(used)


def _view(frame: pd.DataFrame, file_type: str) -> pd.DataFrame:
    view = frame[[c for c in columns(file_type) if c in frame]]
    changes = {c: _epoch_seconds(view[c]) for c in TIME_COLUMNS if c in view}
    # nullable integers go through a per-value Python path in GX's range checks: floats don't
    changes.update(
        {c: view[c].astype("float64") for c in view.columns if str(view[c].dtype) == "Int64" and c != "line_number"}
    )
    return view.assign(**changes)


def _epoch_seconds(column: pd.Series) -> np.ndarray:
    """Seconds since 1970 (NaN for missing) in the column's own unit: no detour through
    nanoseconds, whose range ends in 2262."""
    values = column.array  # its integers count from 1970 in UTC, aware or not
    seconds = values.asi8 / _PER_SECOND[values.unit]
    seconds[np.asarray(values.isna())] = np.nan
    return seconds


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@lru_cache(maxsize=16)
def _validation_definition(file_type: str, today: date):
    """The batch definition, suite and data source of ``file_type``'s validation, built once a
    day per process.

    Chunks are validated with ``Batch.validate(suite)``, not ``ValidationDefinition.run()``:
    ``run()`` also serialises every result into the context's validation results store (deep
    copies of every unexpected row's index and value, kept in memory by the ephemeral context),
    which was half the time of a chunk with many flagged rows and grew with every chunk."""
    import_great_expectations()  # first: without scipy.stats and altair, which no suite uses
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every DataFrame it is handed (an md5 over pandas' hash of every cell, twice
    # a run) for the markers of stored results; we store none (see above). A size threshold
    # decides it: at 0 nothing is hashed. That was a third of the time of a clean chunk's run.
    # There is no setting for it in GX 1.x; tests/test_validation.py notices if it goes away.
    pandas_execution_engine.HASH_THRESHOLD = 0
    gx_run_cache.install()  # each configuration built once per run (see the module)
    _quiet()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]  # GX accepts the dict form
    batch = (
        context.data_sources.add_pandas(f"cdr_{file_type}")
        .add_dataframe_asset("chunk")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=f"cdrflow_{file_type}"))
    names = []
    for entry in suite_config(file_type):
        kwargs = {k: _fill(v, today) for k, v in entry["kwargs"].items()}
        suite.add_expectation(getattr(gxe, _camel(entry["type"]))(**kwargs))
        names.append(expectation_name(entry))
    return batch, suite, context.data_sources.get(f"cdr_{file_type}")


def _forget_batches(datasource) -> None:
    """Drop the DataFrames GX keeps after a run. Its execution engine caches every batch it
    loaded (for interactive use); validating chunk after chunk of a 5M-row file that cache
    grew by about 10 MB a chunk. There is no public call for it in GX 1.x."""
    manager = datasource.get_execution_engine().batch_manager
    manager._batch_data_cache.clear()
    manager.reset_batch_cache()


def prepare(file_type: str, today: date | None = None) -> None:
    """Import GX and build the suite of ``file_type`` for ``today`` (default: today in UTC) now,
    unless built already: what the first chunk of a day would otherwise wait for."""
    with _LOCK:
        _validation_definition(file_type, today or datetime.now(UTC).date())


def file_types() -> list[str]:
    """The file types with a suite file of their own (every built-in format and ``mapped``)."""
    return sorted(p.stem for p in SUITES.glob("*.json") if p.stem != "canonical_call")


def warm_up(file_type: str) -> threading.Thread:
    """Import GX and build the suite of ``file_type`` in a background thread (GX takes seconds
    to import): the loader starts it before it reads the file, so the first chunk need not wait."""

    thread = threading.Thread(target=prepare, args=(file_type,), daemon=True, name="gx-warm-up")
    thread.start()
    return thread


def _name_of(result) -> str:
    config = result.expectation_config
    return expectation_name({"type": config.type, "kwargs": config.kwargs})


def validate_chunk(
    frame: pd.DataFrame, file_type: str, *, now: datetime | None = None, details: bool = True
) -> ChunkValidation:
    """Run the suite of ``file_type`` on a canonical frame. ``details``: with each check's result
    summary for the Data Docs page (:func:`segment_details`; who validates several files at once
    makes each file's instead)."""
    today = (now or datetime.now(UTC)).date()
    with _LOCK:  # one GX context per process; its objects are not meant for concurrent use
        batch_definition, suite, datasource = _validation_definition(file_type, today)
        # Rows are reported by position (the frame's default index; the line numbers are looked
        # up after): GX lists those as they are, while an index column it reads row by row,
        # 25 us a failing row, which counted once flagged rows (extensions, named endpoints)
        # became ordinary traffic.
        view = _view(frame, file_type).reset_index(drop=True)
        lines = view["line_number"].to_numpy()
        with gx_run_cache.run_cache():
            result = batch_definition.get_batch(batch_parameters={"dataframe": view}).validate(
                suite, result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False}
            )
        _forget_batches(datasource)
    bad: dict[int, list[str]] = {}
    summary = []
    unexpected: dict[str, list] = {}
    for r in result.results:
        name = _name_of(r)
        count = int(r.result.get("unexpected_count") or 0)
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {name} could not run: {r.exception_info.get('exception_message')}")
        positions = r.result.get("unexpected_index_list") or []
        config = r.expectation_config
        summary.append(
            ValidationSummary(
                name,
                bool(r.success),
                count,
                config.kwargs.get("column"),
                config={
                    "type": config.type,
                    "kwargs": {k: v for k, v in config.kwargs.items() if k != "batch_id"},
                    "missing": "missing_count" in r.result,  # GX counts rows missing its columns
                },
            )
        )
        unexpected[name] = positions
        for position in positions:
            bad.setdefault(int(lines[position]), []).append(name)
    checked = ChunkValidation(bad, summary, unexpected)
    if details:
        one = np.zeros(len(lines), dtype=np.int64)
        for s, found in zip(summary, segment_details(frame, checked, one, lines)):
            s.detail = found[0]
    return checked


def plain(value):
    """A value of GX's result as JSON has it (NaN, NaT, NA: null; numpy scalars: Python's)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if value != value else str(value)  # JSON (jsonb) has no NaN or Infinity
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (tuple, list)):  # a pair check's values
        return [plain(v) for v in value]
    return str(value)


def _missing(frame: pd.DataFrame, kwargs: dict) -> np.ndarray:
    """Rows GX counts as missing for a check with ``kwargs`` (its column null; for a pair of
    columns, as its ``ignore_row_if`` says)."""
    if "column" in kwargs:
        return frame[kwargs["column"]].isna().to_numpy()
    masks = [frame[v].isna().to_numpy() for k, v in kwargs.items() if k.startswith("column_") and v in frame]
    how = kwargs.get("ignore_row_if", "both_values_are_missing")
    if not masks or how == "neither":
        return np.zeros(len(frame), dtype=bool)
    return np.logical_or.reduce(masks) if how == "either_value_is_missing" else np.logical_and.reduce(masks)


def _values(frame: pd.DataFrame, kwargs: dict, at: np.ndarray) -> list:
    """The values of the rows at positions ``at`` that a check looked at (a pair's as tuples),
    as they are in the frame (see :func:`plain` for JSON)."""
    if "column" in kwargs:
        return frame[kwargs["column"]].take(at).to_numpy(dtype=object).tolist()
    columns = [
        frame[v].take(at).to_numpy(dtype=object).tolist()
        for k, v in kwargs.items()
        if k.startswith("column_") and v in frame
    ]
    return list(zip(*columns))


def segment_details(
    frame: pd.DataFrame, checked: ChunkValidation, segment: np.ndarray, lines: np.ndarray, segments: int = 1
) -> list[list[dict]]:
    """Per check, per segment of ``frame`` (``segment[i]``: row i's, 0 .. max; a file, or a chunk
    of one, when several are validated at once), the summary of its result that the Data Docs
    page needs, as GX's ``SUMMARY`` result format gives it: the rows, the rows missing the
    check's columns, the unexpected rows; the first :data:`SAMPLE` unexpected values with their
    line numbers (``lines[i]``: row i's) and the :data:`SAMPLE` most common unexpected values
    with their counts (all of them counted: GX's own ``partial_unexpected_counts`` count only
    the first 200 values it lists). The values are the frame's (times as times, not the seconds
    GX is handed). Not the full unexpected lists: a file with many failed rows would store
    megabytes. A clean check costs a ``bincount``; only failed rows are looked at one by one."""
    segments = max(segments, int(segment.max()) + 1 if len(segment) else 1)
    rows = np.bincount(segment, minlength=segments)
    out = []
    for s in checked.summary:
        kwargs = (s.config or {}).get("kwargs", {})
        missing = None
        if (s.config or {}).get("missing"):
            missing = np.bincount(segment, weights=_missing(frame, kwargs), minlength=segments)
        positions = np.asarray(checked.unexpected.get(s.expectation, []), dtype=np.int64)
        order = np.argsort(segment[positions], kind="stable")  # GX lists rows in order
        positions = positions[order]
        seg_of = segment[positions]
        cuts = np.searchsorted(seg_of, np.arange(segments + 1))
        values = _values(frame, kwargs, positions) if len(positions) else []
        per_segment = []
        for f in range(segments):
            start, end = int(cuts[f]), int(cuts[f + 1])
            d: dict = {"element_count": int(rows[f])}
            if missing is not None:
                d["missing_count"] = int(missing[f])
            d["unexpected_count"] = end - start
            first = slice(start, min(end, start + SAMPLE))
            d["partial_unexpected_list"] = [plain(v) for v in values[first]]
            # counted as they are (hashable), made JSON once per distinct value
            d["partial_unexpected_counts"] = most_common((plain(v), n) for v, n in Counter(values[start:end]).items())
            d["partial_unexpected_index_list"] = [{"line_number": int(lines[p])} for p in positions[first]]
            per_segment.append(d)
        out.append(per_segment)
    return out


def merge_details(parts: list[dict]) -> dict:
    """One check's result summary over several chunks (:func:`_detail`'s): counts added, samples
    in file order up to :data:`SAMPLE`, value counts added (the most common kept; exact when
    every chunk listed all its unexpected values, which GX's page tells apart by the total)."""
    out: dict = {}
    for key in ("element_count", "missing_count", "unexpected_count"):
        if any(key in p for p in parts):
            out[key] = sum(p.get(key, 0) for p in parts)
    for key in ("partial_unexpected_list", "partial_unexpected_index_list"):
        out[key] = [v for p in parts for v in p.get(key, [])][:SAMPLE]
    out["partial_unexpected_counts"] = most_common(
        (c["value"], c["count"]) for p in parts for c in p.get("partial_unexpected_counts", [])
    )
    return out


def most_common(counted) -> list[dict]:
    """GX's ``partial_unexpected_counts`` from (value, count) pairs (values as :func:`plain`
    makes them; the same value twice, e.g. two NaNs, is added up): the :data:`SAMPLE` most
    common."""
    tally: dict[str, list] = {}
    for value, n in counted:
        key = json.dumps(value)  # a pair check's values are lists: not hashable
        if key in tally:
            tally[key][1] += n
        else:
            tally[key] = [value, n]
    top = sorted(tally.values(), key=lambda vc: -vc[1])[:SAMPLE]
    return [{"value": v, "count": n} for v, n in top]


def merge_summaries(parts: list[list[ValidationSummary]]) -> list[ValidationSummary]:
    """Per-file totals from per-chunk summaries (expectation order kept)."""
    merged: dict[str, ValidationSummary] = {}
    details: dict[str, list[dict]] = {}
    for part in parts:
        for s in part:
            if s.expectation not in merged:
                merged[s.expectation] = ValidationSummary(s.expectation, True, 0, s.column, s.severity, s.config)
            m = merged[s.expectation]
            m.success = m.success and s.success
            m.unexpected_count += s.unexpected_count
            m.severity = s.severity
            if s.detail is not None:
                details.setdefault(s.expectation, []).append(s.detail)
    for name, found in details.items():
        merged[name].detail = found[0] if len(found) == 1 else merge_details(found)
    return list(merged.values())


_COST = {"reject": "rejected", "flag": "flagged, loaded", "fail": "fails the file"}


def format_summary(summary: list[ValidationSummary]) -> str:
    """Lines for the processing log, one per expectation, with its severity."""
    return "".join(
        f"  {s.expectation}: {'ok' if s.success else f'FAILED for {s.unexpected_count} row(s) ({_COST[s.severity]})'}\n"
        for s in summary
    )
