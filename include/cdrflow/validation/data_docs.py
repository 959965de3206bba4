"""Great Expectations' Data Docs page of one file's validation, rendered on request.

Loading keeps, per file, a compact validation result (:func:`result_document`): GX's result
JSON (``ExpectationSuiteValidationResult.to_json_dict()``'s shape) for the whole file, merged from
the results of its chunks, with per check only what GX's ``SUMMARY`` result format gives: rows
checked, rows missing the check's columns, unexpected rows and GX's percentages of them, the
first :data:`~cdrflow.validation.suites.SAMPLE` unexpected values with their line numbers, and the
:data:`~cdrflow.validation.suites.SAMPLE` most common unexpected values with their counts (see
:func:`cdrflow.validation.suites.segment_details`). Never the full unexpected lists (GX's
``COMPLETE`` format, which the loader uses to find the rows): a file of a million flagged rows
stores a few kilobytes like a clean one. Nothing is rendered while loading.

:func:`render` turns a stored result into the page GX itself makes of it for a Data Docs site
(``ValidationResultsPageRenderer`` + ``DefaultJinjaPageView``), with the site's relative links
(its index, the suite's page, the favicon) pointed at the file's page or dropped: there is no
site. The page loads GX's styles and scripts from public CDNs, as a GX site does; without the
internet it shows unstyled, every figure still in it.
"""

from __future__ import annotations

import re
import sys
import threading
from datetime import UTC, datetime
from html import escape

from cdrflow.validation.gx_import import import_great_expectations
from cdrflow.validation.suites import TIME_COLUMNS, ValidationSummary


def _percent(part: int, whole: int) -> float | None:
    return part / whole * 100 if whole else None


def _with_percents(detail: dict) -> dict:
    """GX's percentages of a map check's counts (as its ``_format_map_output`` computes them:
    ``unexpected_percent`` of the rows that are not missing)."""
    out = dict(detail)
    rows, unexpected = detail.get("element_count", 0), detail.get("unexpected_count", 0)
    if "missing_count" in detail:
        present = rows - detail["missing_count"]
        out["missing_percent"] = _percent(detail["missing_count"], rows)
        out["unexpected_percent"] = _percent(unexpected, present)
        out["unexpected_percent_total"] = _percent(unexpected, rows)
        out["unexpected_percent_nonmissing"] = _percent(unexpected, present)
    else:
        out["unexpected_percent"] = _percent(unexpected, rows)
    return out


def result_document(
    summary: list[ValidationSummary],
    *,
    file_type: str,
    file_id: int,
    file_name: str,
    carrier: str,
    validated_at: datetime | None = None,
) -> dict | None:
    """The validation result of a file to store (JSON, the shape of GX's ``to_json_dict()``),
    from its merged summary (:func:`cdrflow.validation.suites.merge_summaries`); None when
    nothing was validated."""
    results = [
        {
            "success": s.success,
            "expectation_config": {
                "type": s.config["type"],
                "kwargs": s.config["kwargs"],
                "meta": {"cdrflow_severity": s.severity},  # what failing it cost a row
            },
            "result": _with_percents(s.detail),
            "exception_info": {"raised_exception": False, "exception_message": None, "exception_traceback": None},
        }
        for s in summary
        if s.config is not None and s.detail is not None
    ]
    if not results:
        return None
    passed = sum(1 for r in results if r["success"])
    when = (validated_at or datetime.now(UTC)).astimezone(UTC)
    gx = sys.modules.get("great_expectations")  # imported by the validation that made ``summary``
    return {
        "success": passed == len(results),
        "suite_name": f"cdrflow_{file_type}",
        "results": results,
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(results) - passed,
            "success_percent": passed / len(results) * 100,
        },
        "meta": {
            "great_expectations_version": getattr(gx, "__version__", None),
            "run_id": {"run_name": f"file {file_id}", "run_time": when.isoformat()},
            "batch_spec": {
                "data_asset_name": file_name,
                "file_id": file_id,
                "carrier": carrier,
                "file_type": file_type,
                "rows": max((s.detail.get("element_count", 0) for s in summary if s.detail), default=0),
            },
            "validation_time": when.strftime("%Y%m%dT%H%M%S.%fZ"),
        },
    }


def _readable_time(value):
    """Seconds since 1970 (how the suite hands times to GX, see ``suites.TIME_COLUMNS``) as ISO
    8601 in UTC on the page."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return value
    return value


def _for_people(result: dict) -> dict:
    """A stored check result with the bounds of a time check readable (GX was handed seconds
    since 1970; the sampled values are the file's times already)."""
    config = result["expectation_config"]
    if config["kwargs"].get("column") not in TIME_COLUMNS:
        return result
    kwargs = {k: _readable_time(v) if k in ("min_value", "max_value") else v for k, v in config["kwargs"].items()}
    return {**result, "expectation_config": {**config, "kwargs": kwargs}}


_RENDER = threading.Lock()  # GX's renderers are not documented as safe for concurrent use
_SUITE_LINK = re.compile(r'<a href="(?:\.\./)+expectations/[^"]*"\s*>([^<]*)</a>')
_FAVICON = re.compile(r'<link rel="shortcut icon" href="(?:\.\./)+[^"]*"[^>]*>')
_INDEX = re.compile(r'href="(?:\.\./)+index\.html"')


def render(document: dict, *, home: str) -> str:
    """GX's Data Docs page (HTML) of a stored validation result; the site's "Home" links lead
    to ``home`` (the file's page)."""
    # imported here, not with the module: GX takes seconds to import, the API server pays it on
    # the first page asked for, not when it starts
    import_great_expectations()
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    results = []
    for stored in document["results"]:
        r = _for_people(stored)
        config = r["expectation_config"]
        results.append(
            ExpectationValidationResult(
                success=r["success"],
                expectation_config=ExpectationConfiguration(
                    type=config["type"], kwargs=dict(config["kwargs"]), meta=dict(config.get("meta") or {})
                ),
                result=dict(r["result"]),
                exception_info=dict(r.get("exception_info") or {}),
            )
        )
    validation = ExpectationSuiteValidationResult(
        success=document["success"],
        results=results,
        suite_name=document["suite_name"],
        statistics=document["statistics"],
        meta=dict(document["meta"]),
    )
    with _RENDER:
        html = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(validation))
    html = _SUITE_LINK.sub(r"\1", html)
    html = _FAVICON.sub("", html)
    link = f'href="{escape(home, quote=True)}"'
    return _INDEX.sub(lambda _: link, html)
