"""Validation of several files' rows in one suite run, with each file's own results.

A Great Expectations run costs about 0.1 s whatever its size, which would dominate a file of a
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
    calls: pd.DataFrame, owner: np.ndarray, owners: int, file_type: str
) -> tuple[dict[int, list[str]], list[list[suites.ValidationSummary]]]:
    """ONE suite run over the rows of several files; ``owner[i]`` is the file (0 ..
    ``owners`` - 1) of row i. Returns the failed expectations of each failing row (by its
    position in ``calls``) and each file's summary, which count its own rows only: exactly what
    validating each file alone gives. Record keys are made file-specific for the uniqueness
    expectation (unique within a file, not across files)."""
    used = suites.columns(file_type)
    view = calls[[name for name in used if name in calls]]
    changes: dict = {"line_number": np.arange(len(view))}  # GX reports rows by this column
    if "record_key" in view:
        ids = pa.array(view["record_key"], from_pandas=True)
        prefix = pc.cast(pa.array(owner, pa.int64()), pa.string())
        owned = pc.binary_join_element_wise(prefix, pc.cast(ids, pa.string()), "\x1f")  # null stays null
        changes["record_key"] = pd.array(owned.cast(pa.large_string()), dtype=_STR)
    checked = suites.validate_chunk(view.assign(**changes), file_type)
    counts = np.zeros((owners, len(checked.summary)), dtype=np.int64)
    index = {s.expectation: k for k, s in enumerate(checked.summary)}
    for i, reasons in checked.bad_rows.items():
        for name in reasons:
            counts[owner[i], index[name]] += 1
    summaries = [
        [
            suites.ValidationSummary(s.expectation, int(counts[f, k]) == 0, int(counts[f, k]), s.column)
            for k, s in enumerate(checked.summary)
        ]
        for f in range(owners)
    ]
    return checked.bad_rows, summaries
