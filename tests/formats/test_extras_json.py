"""calls.extras: the source fields without a column, as one JSON object per row, built by Arrow
(``arrow_text.json_objects``): every value kept exactly, however it is quoted or escaped."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdrflow.formats.arrow_text import json_objects

values = st.one_of(st.none(), st.text(alphabet=st.sampled_from("ab\"\\ é<>,'{}:"), max_size=8))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(values, values, values), min_size=1, max_size=12),
    skip=st.integers(min_value=0, max_value=3),
    chunked=st.booleans(),
)
@example(rows=[('"Alice" <1001>', "C:\\dir", None)], skip=0, chunked=False)
@example(rows=[("x", "", None), ("", "", None)], skip=0, chunked=False)  # empty columns: no key
def test_each_row_is_its_values_as_json(rows, skip, chunked):
    names = ["clid", "lastdata", "userfield"]
    # a slice of a longer array (its buffer holds neighbours' bytes) or several chunks, as
    # Arrow hands the parser's columns over
    padding = [('"\\', '"\\', '"\\')] * skip
    columns = {}
    for k, name in enumerate(names):
        whole = pa.array([r[k] for r in padding + rows], pa.string())
        col = whole.slice(skip)
        columns[name] = pa.chunked_array([col.slice(0, 1), col.slice(1)]) if chunked else col
    got = [json.loads(text) for text in json_objects(columns, len(rows), printable=True).to_pylist()]
    expected = [{n: v for n, v in zip(names, r) if v} for r in rows]
    assert got == expected
