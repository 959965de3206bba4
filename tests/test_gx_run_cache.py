"""Great Expectations' objects remembered within one run (cdrflow.validation.gx_run_cache): the
same results as GX alone, for every check of every suite, and nothing kept after the run."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from cdrflow.formats.base import conform
from cdrflow.validation import gx_run_cache, suites

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def calls(rows: int = 40) -> pd.DataFrame:
    """Calls of which some fail every check of the canonical suite (and the formats' own)."""
    n = np.arange(rows)
    frame = pd.DataFrame(
        {
            "carrier_call_id": [f"c{i}" if i % 11 else None for i in n],
            "record_key": [f"k{i % 37}" for i in n],  # three repeated keys
            "start_time": pd.to_datetime(["2026-11-01 10:00:00"] * rows, utc=True),
            "duration_seconds": [60 if i % 7 else -5 for i in n],
            "billing_seconds": [50 if i % 5 else 70 for i in n],
            "ringing_seconds": [10] * rows,
            "caller_number": ["+15551230001" if i % 6 else "DROP TABLE" for i in n],
            "callee_number": ["442071230001" if i % 9 else "x" for i in n],
            "direction": ["inbound" if i % 8 else "sideways" for i in n],
            "record_type": ["complete" if i % 10 else None for i in n],
            "disposition": ["ANSWERED" if i % 4 else "MAYBE" for i in n],
            "hangup_code": [200 if i % 13 else 999 for i in n],
            "hangup_cause": ["NORMAL_CLEARING" if i % 3 else None for i in n],
            "call_type": ["voice" if i % 2 else None for i in n],
            "line_number": n + 1,
            "raw_text": ["raw"] * rows,
        }
    )
    frame.loc[3, "start_time"] = pd.Timestamp("1990-01-01", tz="UTC")
    return conform(frame)


def _as_compared(result: suites.ChunkValidation):
    return (
        result.bad_rows,
        [(s.expectation, s.success, s.unexpected_count, s.column, s.config, s.detail) for s in result.summary],
    )


@pytest.mark.parametrize("file_type", suites.file_types())
def test_a_run_with_the_cache_gives_what_gx_alone_gives(file_type, monkeypatch):
    frame = calls()
    cached = suites.validate_chunk(frame, file_type, now=NOW)
    with monkeypatch.context() as m:
        m.setattr(gx_run_cache, "run_cache", contextlib.nullcontext)
        alone = suites.validate_chunk(frame, file_type, now=NOW)
    assert _as_compared(cached) == _as_compared(alone)
    assert cached.bad_rows  # the frame fails checks: the comparison is not of empty results
    assert {s.expectation for s in cached.summary if not s.success} >= {
        "expect_column_values_to_not_be_null(carrier_call_id)",
        "expect_column_values_to_be_between(duration_seconds)",
        "expect_column_pair_values_a_to_be_greater_than_b(duration_seconds,billing_seconds)",
        "expect_column_values_to_match_regex(caller_number)",
        "expect_column_values_to_be_in_set(direction)",
        "expect_column_values_to_be_unique(record_key)",
        "expect_column_values_to_be_between(start_time)",
    }


def test_objects_are_remembered_within_a_run_only():
    suites.prepare("asterisk_csv")  # imports GX and installs the cache
    import great_expectations.expectations as gxe

    assert gx_run_cache.install()
    check = gxe.ExpectColumnValuesToNotBeNull(column="caller_number")
    assert check.configuration is not check.configuration  # GX's own: a new object each time
    with gx_run_cache.run_cache():
        first = check.configuration
        assert check.configuration is first
        assert first.to_domain_obj() is first.to_domain_obj()
    assert check.configuration is not first  # the run's objects are gone with it
    assert first.to_domain_obj() is not first.to_domain_obj()


@pytest.mark.parametrize(
    "values",
    [
        {"column": "caller_number", "batch_id": "b1"},
        {"column": "a", "value_set": ["ANSWERED", "BUSY"], "mostly": 0.5, "strict": False, "n": None},
        {"column": "a", "min_value": float("nan"), "max_value": 3},  # NaN: GX's way (null)
        {"column": "a", "max_value": np.int64(3), "parse": {"x": (1, 2)}},  # numpy: GX's way
        {"column": "a", 1: "numeric key"},
    ],
)
def test_metric_ids_are_gx_own(values):
    suites.prepare("asterisk_csv")
    from great_expectations.core.id_dict import IDDict

    outside = IDDict(values).to_id()
    with gx_run_cache.run_cache():
        inside = IDDict(values).to_id()
    assert inside == outside
    assert len(outside) == 32  # an md5: the values were dumped, not the one-key short form
