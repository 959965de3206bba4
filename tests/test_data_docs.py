"""Great Expectations' Data Docs for each validated file, reachable from the file's page (issue 14,
analysts).

A file with bad rows is loaded for real; its page on the cdrflow page (``/cdr/operator/``, the
uvicorn API server, an operator token) links to ``files/{id}/data-docs``, the page GX renders for
that file's validation result: the suite, the file, each failed expectation with that file's
unexpected count and values. What is stored per file is a summary, a few kilobytes however many
rows failed; files validated together (small files, a big file's chunks) each get exactly their
own result; a file never validated answers 404 with a page that says so.
"""

from __future__ import annotations

import io
import re
from html import unescape

import httpx
import pytest
from tests.api.conftest import api, api_engine, api_server, auth, make_token
from tests.test_loader import q, register
from tests.test_validation_policy import good, rec

from cdrflow.formats.base import ParseOptions
from cdrflow.loading.batches import process_batch
from cdrflow.loading.chunks import CheckedChunk, _apply, parsed_chunks, validate_together
from cdrflow.loading.transaction import load_file
from cdrflow.validation import data_docs, suites
from cdrflow.validation.policy import policy_for
from conftest import add_carrier

pytestmark = pytest.mark.integration

PAGE = "/operator"
REGEX = "expect_column_values_to_match_regex"
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"

# 20 good calls; three callees that are dialplan extensions (flag), a caller that is an endpoint
# name (flag), a billed time longer than the call (reject; its ringing time, the difference, is negative)
BAD = (
    good(10)
    + rec("x1", dst="s")
    + rec("x2", dst="h")
    + good(10, "k")
    + rec("x3", dst="s")
    + rec("x4", src="client1")
    + rec("x5", duration=10, billsec=60)
).encode()


@pytest.fixture
def operator(make_token) -> dict[str, str]:
    return auth(make_token(None))


@pytest.fixture
def acme(api_engine) -> str:
    return add_carrier(api_engine, "acme", file_type="asterisk_csv")


@pytest.fixture
def bad_file(api_engine, store, acme) -> int:
    file_id = register(api_engine, store, BAD, "Master-odd.csv").file_id
    result = load_file(api_engine, store, file_id)
    assert (result.status, result.loaded, result.flagged, result.rejected) == ("loaded", 24, 4, 1)
    return file_id


def text_of(page: str) -> str:
    """The page's words, tags and scripts left out."""
    words = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", words)))


def html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def stored(engine, file_id: int) -> dict:
    (row,) = q(engine, "SELECT result FROM file_validations WHERE file_id = :i", i=file_id)
    return row.result


def check(document: dict, type_: str, column: str) -> dict:
    (found,) = [
        r
        for r in document["results"]
        if r["expectation_config"]["type"] == type_
        and column
        in (r["expectation_config"]["kwargs"].get("column"), r["expectation_config"]["kwargs"].get("column_A"))
    ]
    return found


def test_the_file_page_links_to_gx_data_docs_of_that_file(api, api_engine, operator, bad_file):
    page = html(api.get(f"{PAGE}/files/{bad_file}", headers=operator))
    link = f"/cdr/operator/files/{bad_file}/data-docs"
    assert f'href="{link}"' in page
    assert "10 of 14 expectations met" in text_of(page)

    docs = html(api.get(f"{PAGE}/files/{bad_file}/data-docs", headers=operator))
    assert "Data documentation compiled by Great Expectations" in docs  # GX's own page template
    words = text_of(docs)
    assert "Validations / cdrflow_asterisk_csv / Master-odd.csv" in words  # GX's page title
    assert "Expectation Suite: cdrflow_asterisk_csv Data asset: Master-odd.csv Status: Failed" in words
    assert "Evaluated Expectations 14 Successful Expectations 10 Unsuccessful Expectations 4" in words
    # each failed expectation with this file's unexpected rows, values and counts, as GX words it
    callee = re.search(r"callee_number Status Expectation Observed Value (.*?) caller_number", words).group(1)
    assert "values must match this regular expression" in callee
    assert "3 unexpected values found. 12% of 25 total rows." in callee
    assert "Unexpected Value Count s 2 h 1" in callee
    caller = re.search(r"caller_number Status Expectation Observed Value (.*?) carrier_call_id", words).group(1)
    assert "1 unexpected values found." in caller and "client1 1" in caller
    assert "Values in duration_seconds must always be greater than or equal to those in billing_seconds" in words
    # the site's relative links lead back to the file's page, none into the void
    assert f'href="/cdr/operator/files/{bad_file}"' in docs
    assert 'href="../' not in docs and 'src="../' not in docs

    # what is stored: GX's result shape, with the lines of the first unexpected rows
    document = stored(api_engine, bad_file)
    regex = check(document, REGEX, "callee_number")
    assert regex["success"] is False and regex["expectation_config"]["meta"] == {"cdrflow_severity": "flag"}
    assert regex["result"]["unexpected_count"] == 3 and regex["result"]["element_count"] == 25
    assert regex["result"]["partial_unexpected_list"] == ["s", "h", "s"]
    assert regex["result"]["partial_unexpected_index_list"] == [{"line_number": n} for n in (11, 12, 23)]
    assert check(document, PAIR, "duration_seconds")["result"]["partial_unexpected_list"] == [[10, 60]]


def test_a_file_never_validated_answers_404_and_its_page_says_so(api, api_engine, operator, bad_file, store):
    again = register(api_engine, store, BAD, "Master-again.csv")  # the same bytes: a duplicate
    (status,) = q(api_engine, "SELECT status FROM cdr_files WHERE id = :i", i=again.file_id)[0]
    assert status == "duplicate"
    missing = html(api.get(f"{PAGE}/files/{again.file_id}/data-docs", headers=operator), 404)
    assert f"file {again.file_id} (duplicate) has no validation result stored" in text_of(missing)
    assert "No validation result stored" in html(api.get(f"{PAGE}/files/{again.file_id}", headers=operator))
    assert "data-docs" not in html(api.get(f"{PAGE}/files/{again.file_id}", headers=operator))
    # rejected before its rows were checked (not a Master.csv at all): none either
    junk = register(api_engine, store, b"\x00\x01 not a csv\n", "junk.csv").file_id
    assert load_file(api_engine, store, junk).status == "rejected"
    assert "has no validation result stored" in text_of(
        html(api.get(f"{PAGE}/files/{junk}/data-docs", headers=operator), 404)
    )
    assert "no file has id 999999" in html(api.get(f"{PAGE}/files/999999/data-docs", headers=operator), 404)
    assert html(api.get(f"{PAGE}/files/abc/data-docs", headers=operator), 400)
    assert html(api.get(f"{PAGE}/files/0/data-docs", headers=operator), 400)


def test_only_operators_see_data_docs(api, make_token, bad_file):
    url = f"{PAGE}/files/{bad_file}/data-docs"
    assert api.get(url).status_code == 401
    assert api.get(url, headers=auth("not-a-token")).status_code == 401
    assert api.get(url, cookies={"_token": "eyJhbGciOiJIUzUxMiJ9.e30.x"}).status_code == 401
    assert "for operators" in html(api.get(url, headers=auth(make_token("acct1"))), 403)
    assert "Great Expectations" in html(api.get(url, headers=auth(make_token(None))))
    assert not [p for p in api.get("/openapi.json").json()["paths"] if "data-docs" in p]


def test_many_failed_rows_store_a_summary_not_the_rows(api_engine, store, acme):
    # 3,000 calls to extension "s": every one fails the callee check (flagged, loaded)
    data = "".join(rec(f"e{i}", dst="s" if i % 3 else "h") for i in range(3000)).encode()
    file_id = register(api_engine, store, data, "Master-many.csv").file_id
    assert load_file(api_engine, store, file_id).flagged == 3000
    ((size,),) = q(api_engine, "SELECT octet_length(result::text) FROM file_validations WHERE file_id = :i", i=file_id)
    assert size < 16_000, size  # the 3,000 values and their lines would be some 60 kB
    result = check(stored(api_engine, file_id), REGEX, "callee_number")["result"]
    assert result["unexpected_count"] == 3000 and result["element_count"] == 3000
    assert len(result["partial_unexpected_list"]) == suites.SAMPLE == 20
    assert result["partial_unexpected_counts"] == [{"value": "s", "count": 2000}, {"value": "h", "count": 1000}]
    assert result["unexpected_percent"] == 100.0
    assert "unexpected_list" not in result and "unexpected_index_list" not in result


def test_small_files_validated_together_each_get_their_own_result(api_engine, store, acme):
    one = register(api_engine, store, (good(5, "a") + rec("a9", dst="s")).encode(), "one.csv").file_id
    two = register(
        api_engine, store, (good(7, "b") + rec("b8", dst="h") + rec("b9", src="client1")).encode(), "two.csv"
    ).file_id
    outcome = process_batch(api_engine, store, [one, two])
    assert sorted(r.status for r in outcome.results) == ["loaded", "loaded"]
    first, second = stored(api_engine, one), stored(api_engine, two)
    assert {"element_count": 6, "unexpected_count": 1}.items() <= check(first, REGEX, "callee_number")["result"].items()
    assert check(first, REGEX, "callee_number")["result"]["partial_unexpected_list"] == ["s"]
    assert check(first, REGEX, "caller_number")["success"] is True
    assert check(second, REGEX, "callee_number")["result"]["partial_unexpected_list"] == ["h"]
    assert check(second, REGEX, "callee_number")["result"]["partial_unexpected_index_list"] == [{"line_number": 8}]
    assert check(second, REGEX, "caller_number")["result"]["unexpected_count"] == 1
    assert check(second, REGEX, "caller_number")["result"]["element_count"] == 9
    assert first["meta"]["batch_spec"]["data_asset_name"] == "one.csv"


def _result(chunks: list[CheckedChunk]) -> dict:
    merged = suites.merge_summaries([c.summary for c in chunks if c.summary])
    document = data_docs.result_document(merged, file_type="asterisk_csv", file_id=1, file_name="f", carrier="acme")
    assert document is not None
    return {r["expectation_config"]["type"] + str(r["expectation_config"]["kwargs"]): r for r in document["results"]}


def test_a_file_validated_in_chunks_has_the_result_of_validating_it_whole():
    """A big file is validated a group of chunks at a time (cdrflow.loading.chunks), each chunk's
    result summary taken out of the group's; added up, they are the result of validating all its
    rows at once (alone, or as the one file of a group): counts, samples, lines, most common."""
    (parsed,) = parsed_chunks(io.BytesIO(BAD), "asterisk_csv", ParseOptions())
    calls = parsed.calls.reset_index(drop=True)
    key = calls["record_key"].copy()
    key.iloc[-1] = key.iloc[0]  # a record key twice (first and last chunk): the uniqueness check fails
    calls = calls.assign(record_key=key)
    whole = CheckedChunk(calls, [], [], len(calls))
    policy = policy_for("asterisk_csv")
    alone = _result([validate_together([[whole]], "asterisk_csv", [policy])[0][0]])
    at_once = _result([_apply(whole, suites.validate_chunk(whole.calls, "asterisk_csv"), policy)])
    parts = [CheckedChunk(calls.iloc[i : i + 6], [], [], len(calls.iloc[i : i + 6])) for i in range(0, len(calls), 6)]
    assert len(parts) == 5
    chunked = _result(validate_together([parts], "asterisk_csv", [policy])[0])
    assert chunked == alone == at_once
    unique = next(r for k, r in chunked.items() if "to_be_unique" in k)["result"]
    assert unique["unexpected_count"] == 2 and unique["partial_unexpected_list"] == [key.iloc[0]] * 2
    assert unique["partial_unexpected_index_list"] == [{"line_number": 1}, {"line_number": 25}]
    callee = next(r for k, r in chunked.items() if REGEX in k and "callee_number" in k)["result"]
    assert callee["partial_unexpected_counts"] == [{"value": "s", "count": 2}, {"value": "h", "count": 1}]
    assert [x["line_number"] for x in callee["partial_unexpected_index_list"]] == [11, 12, 23]
    assert callee["element_count"] == 25 and callee["unexpected_percent"] == 12.0
