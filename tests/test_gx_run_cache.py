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


def _gx_results(file_type: str, frame: pd.DataFrame, result_format: dict, cached: bool) -> list[dict]:
    """GX's own result of each check (counts, positions, values), with or without the cache."""
    definition, suite, datasource = suites._validation_definition(file_type, NOW.date())
    view = suites._view(frame, file_type).reset_index(drop=True)
    with gx_run_cache.run_cache() if cached else contextlib.nullcontext():
        result = definition.get_batch(batch_parameters={"dataframe": view}).validate(suite, result_format=result_format)
    suites._forget_batches(datasource)
    return [r.to_json_dict()["result"] for r in result.results]


@pytest.mark.parametrize("result_format", ["COMPLETE", "SUMMARY"])
@pytest.mark.parametrize("file_type", ["asterisk_csv", "mapped"])
def test_failing_rows_and_values_are_gx_own(file_type, result_format, monkeypatch):
    """The failing rows' positions and values taken without filtering the whole frame are GX's
    own lists, nulls skipped where the check skips them, in full and cut to GX's partial count."""
    suites.prepare(file_type)
    from great_expectations.expectations.registry import _registered_metrics

    for metric in ("column_values.in_set.unexpected_index_list", "column_values.match_regex.unexpected_values"):
        _, function = _registered_metrics[metric]["providers"]["PandasExecutionEngine"]
        assert hasattr(function, "__wrapped__"), metric  # cdrflow's wrapper of GX's function
    hits = []
    frame = calls(60)
    result_format_ = {
        "result_format": result_format,
        "return_unexpected_index_query": False,
        "partial_unexpected_count": 3,
    }
    with monkeypatch.context() as m:  # count the fast paths taken (the wrapped functions are built at install)
        m.setattr(
            gx_run_cache, "_failing", lambda index, mask, f=gx_run_cache._failing: hits.append(1) or f(index, mask)
        )
        cached = _gx_results(file_type, frame, result_format_, cached=True)
    alone = _gx_results(file_type, frame, result_format_, cached=False)
    assert cached == alone
    assert hits, "the fast path was not taken"
    lists = [r.get("unexpected_index_list") or r.get("partial_unexpected_index_list") for r in cached]
    assert any(lists)  # some check failed: the comparison is not of empty lists
    if result_format == "COMPLETE":
        assert any(r.get("unexpected_list") for r in cached)


def test_a_plan_is_reused_for_other_data_with_gx_own_results():
    """The plan of a run (metrics and their dependencies) does not depend on the data: runs on
    different frames (other sizes, other failing rows, a column missing) reuse one plan and give
    GX's own results for each."""
    suites.prepare("asterisk_csv")
    gx_run_cache._PLANS.clear()
    result_format = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
    frames = [calls(40), calls(7), calls(90).assign(disposition="ANSWERED"), calls(25).drop(columns=["direction"])]
    plans, results = [], []
    for frame in frames:
        cached = _gx_results("asterisk_csv", frame, result_format, cached=True)
        plans.append(list(gx_run_cache._PLANS.values()))
        alone = _gx_results("asterisk_csv", frame, result_format, cached=False)
        assert cached == alone
        results.append(cached)
    assert len(plans[0]) == 1  # planned by the first run...
    assert all(p == plans[0] and p[0] is plans[0][0] for p in plans)  # ...and the same plan reused
    assert len({repr(r) for r in results}) == len(frames)  # while each run found its own data's results
