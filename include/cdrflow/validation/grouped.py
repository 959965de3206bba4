"""Validation of several files' rows in one suite run, with each file's own results.

A Great Expectations run costs about 0.03 s whatever its size, which would dominate a file of a
thousand calls: small files are validated together here, exactly as if each were alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cdrflow.validation import suites

_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def validate_owned(
    calls: pd.DataFrame,
    owner: np.ndarray,
    owners: int,
    file_type: str,
    segment: np.ndarray | None = None,
    segments: int = 0,
) -> tuple[dict[int, list[str]], list[list[suites.ValidationSummary]]]:
    """ONE suite run over the rows of several files; ``owner[i]`` is the file (0 ..
    ``owners`` - 1) of row i. Returns the failed expectations of each failing row (by its
    position in ``calls``) and each file's summary, which count its own rows only: exactly what
    validating each file alone gives. Record keys are made file-specific for the uniqueness
    expectation (unique within a file, not across files).

    ``segment``: the part (0 .. ``segments`` - 1) of its file that row i is in (the chunks of a
    file validated together): the summaries are then the segments', not the files'. The rows
    of a file, and of a segment, are next to each other."""
    used = suites.columns(file_type)
    view = calls[[name for name in used if name in calls]]
    changes: dict = {"line_number": np.arange(len(view))}  # GX reports rows by this column
    if "record_key" in view:
        ids = pa.array(view["record_key"], from_pandas=True)
        prefix = pc.cast(pa.array(owner, pa.int64()), pa.string())
        owned = pc.binary_join_element_wise(prefix, pc.cast(ids, pa.string()), "\x1f")  # null stays null
        changes["record_key"] = pd.array(owned.cast(pa.large_string()), dtype=_STR)
    checked = suites.validate_chunk(view.assign(**changes), file_type, details=False)
    if segment is None:
        segment, segments = owner, owners
    counts = np.zeros((segments, len(checked.summary)), dtype=np.int64)
    index = {s.expectation: k for k, s in enumerate(checked.summary)}
    for i, reasons in checked.bad_rows.items():
        for name in reasons:
            counts[segment[i], index[name]] += 1
    # each segment's result summary, from the rows as they came (its own record keys, times)
    details = suites.segment_details(view, checked, segment, view["line_number"].to_numpy(), segments)
    summaries = [
        [
            suites.ValidationSummary(
                s.expectation,
                int(counts[f, k]) == 0,
                int(counts[f, k]),
                s.column,
                config=s.config,
                detail=details[k][f],
            )
            for k, s in enumerate(checked.summary)
        ]
        for f in range(segments)
    ]
    return checked.bad_rows, summaries
