"""Report requests (seed 001) without HTTP: validation, the report's SELECT, the builder (bytes of
the CSV, gzip, claims and leases, failures) and housekeeping, on the real warehouse."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from cdrflow.api.csv_safety import is_dangerous
from cdrflow.intake.registry import register_file
from cdrflow.reports import build, housekeeping, query, requests
from cdrflow.reports.filters import InvalidRequest
from cdrflow.warehouse import tables
from conftest import add_carrier, run_cli
from servers.s3 import s3_server

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = {"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-02T00:00:00+00:00"}
HEADER = ",".join(query.COLUMNS) + "\n"


@pytest.fixture
def reports(engine):
    """The warehouse, emptied of report requests after the test."""
    yield engine
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE report_requests"))


def add_call(conn, call_id: str, start: str, **values) -> None:
    """One call leg, written straight into ``calls`` (its month's partition created first)."""
    row = {
        "carrier": "acme",
        "record_key": call_id,
        "carrier_call_id": call_id,
        "start_time": datetime.fromisoformat(start),
        "file_id": 7,
        "line_number": 3,
        "direction": "inbound",
        "record_type": "complete",
        "duration_seconds": 65,
        "billing_seconds": 60,
        "account_id": "A1",
        **values,
    }
    conn.execute(text("SELECT cdrflow_ensure_calls_partition(:ts)"), {"ts": row["start_time"]})
    conn.execute(insert(tables.calls).values(**row))


def new_request(conn, body: dict, account: str | None = "A1", now: datetime = NOW) -> requests.ReportRequest:
    return requests.create(conn, requests.validate(body, now), account)


def status_of(engine, ident: str):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT status, failure_reason, bytes, sha256, row_count FROM report_requests WHERE id = :id"),
            {"id": ident},
        ).one()


# -- validation ----------------------------------------------------------------------------------


def test_times_accept_z_and_offsets_and_defaults_apply():
    got = requests.validate({"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-01T06:21:27+00:00"}, NOW)
    assert got.start_time == datetime(2026, 11, 1, tzinfo=UTC)
    assert got.end_time == datetime(2026, 11, 1, 6, 21, 27, tzinfo=UTC)
    assert got.call_types == [1] and got.record_types == [1] and got.filters == [] and got.gzip is False
    shifted = requests.validate({"start_time": "2026-11-01T02:00:00+02:00"}, NOW)
    assert shifted.start_time == datetime(2026, 11, 1, tzinfo=UTC)
    assert shifted.end_time == NOW  # end_time omitted: now
    assert requests.validate({**DAY, "connections": [12, "x", 12]}, NOW).connections == ["12", "x"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"start_time": "string", "end_time": "string"}, "/start_time"),  # the seed's own sample
        ({"end_time": "2026-11-02T00:00:00Z"}, "/start_time"),
        ({"start_time": "2026-11-02T00:00:00Z", "end_time": "2026-11-01T00:00:00Z"}, "/start_time"),
        ({"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-21T12:00:00Z"}, "/end_time"),  # now + 24 h
        ({**DAY, "call_types": [3]}, "/call_types/0"),
        ({**DAY, "call_types": []}, "/call_types"),
        ({**DAY, "record_types": [1, 4]}, "/record_types/1"),
        ({**DAY, "record_types": [True]}, "/record_types/0"),
        ({**DAY, "source": "sip"}, "/source"),
        ({**DAY, "connections": [""]}, "/connections/0"),
        ({**DAY, "report_name": "a\x00b"}, "/report_name"),
        ({**DAY, "report_name": "x" * 201}, "/report_name"),
        ({**DAY, "filters": [{"filter_type": "or", "cli": "1"}]}, "/filters/0/filter_type"),
        (
            {
                **DAY,
                "filters": [
                    {"filter_type": "and", "cli": "1"},
                    {"filter_type": "or", "cli": "2"},
                    {"filter_type": "and", "cli": "3"},
                ],
            },
            "/filters/2/filter_type",
        ),
        ({**DAY, "filters": [{"filter_type": "and", "cli": "1", "cli_filter": "equals"}]}, "/filters/0/cli_filter"),
        ({**DAY, "filters": [{"filter_type": "xor", "cli": "1"}]}, "/filters/0/filter_type"),
        ({**DAY, "filters": [{"filter_type": "and"}]}, "/filters/0"),
        ({**DAY, "filters": [{"filter_type": "and", "billing_group": "x"}]}, "/filters/0"),
        ({**DAY, "filters": ["string"]}, "/filters/0"),  # the seed's own sample
        ({**DAY, "gzip": "yes"}, "/gzip"),
    ],
)
def test_invalid_requests_are_refused_naming_the_field(body, pointer):
    with pytest.raises(InvalidRequest) as caught:
        requests.validate(body, NOW)
    assert caught.value.field == pointer, str(caught.value)


def test_filters_as_json_strings_and_single_tags_are_normalised():
    got = requests.validate(
        {
            **DAY,
            "filters": [
                '{"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"}',
                {"filter_type": "or", "tags_list": "vip", "cld": "0100"},
            ],
        },
        NOW,
    )
    assert got.filters == [
        {"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"},
        {"filter_type": "or", "cld": "0100", "cld_filter": "contains", "tags_list": ["vip"]},
    ]


# -- what a report selects -------------------------------------------------------------------------

VECTOR = [  # api-contract.md A2.5 item 1
    ("A", "+13125550001", "+18005550100"),
    ("B", "+14155550002", "+18005550100"),
    ("C", "+13125550003", "+16505550104"),
]


def _selected(engine, body: dict, account: str | None = "A1") -> set[str]:
    new = requests.validate({**DAY, **body}, NOW)
    sel = query.Selection(account, new.start_time, new.end_time, new.call_types, new.record_types,
                          new.connections, new.filters)  # fmt: skip
    with engine.connect() as conn:
        return {r.call_leg_id for r in conn.execute(query.report_select(sel))}


@pytest.fixture
def vector(reports):
    with reports.begin() as conn:
        for i, (name, cli, cld) in enumerate(VECTOR):
            add_call(conn, name, f"2026-11-01T10:0{i}:00+00:00", caller_number=cli, caller_e164=cli,
                     callee_number=cld, callee_e164=cld, tags=["gold"] if name == "B" else None)  # fmt: skip
    return reports


def test_the_contract_filter_vector_is_a_left_fold(vector):
    filters = [
        {"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"},
        {"filter_type": "or", "cld": "0100", "cld_filter": "ends_with"},
    ]
    assert _selected(vector, {"filters": filters}) == {"A", "B", "C"}  # (a); the grouped reading gives {A}
    both = [filters[0], {**filters[1], "filter_type": "and"}]
    assert _selected(vector, {"filters": both}) == {"A"}
    assert _selected(vector, {}) == {"A", "B", "C"}


def test_numbers_match_with_and_without_plus_and_tags_any_of(vector):
    assert _selected(vector, {"filters": [{"filter_type": "and", "cli": "1312", "cli_filter": "starts_with"}]}) == {
        "A",
        "C",
    }
    assert _selected(vector, {"filters": [{"filter_type": "and", "cld": "555010"}]}) == {"A", "B", "C"}
    assert _selected(vector, {"filters": [{"filter_type": "and", "tags_list": ["x", "gold"]}]}) == {"B"}
    assert _selected(vector, {"filters": [{"filter_type": "and", "cli": "%"}]}) == set()  # % is a character


def test_account_time_direction_record_type_and_connection(reports):
    with reports.begin() as conn:
        add_call(conn, "in", "2026-11-01T10:00:00+00:00", connection="7")
        add_call(conn, "out", "2026-11-01T10:01:00+00:00", direction="outbound")
        add_call(conn, "missed", "2026-11-01T10:02:00+00:00", record_type="incomplete")
        add_call(conn, "unknown", "2026-11-01T10:03:00+00:00", direction=None, record_type=None, billing_seconds=0)
        add_call(conn, "late", "2026-11-02T00:00:00+00:00")  # end_time is exclusive
        add_call(conn, "early", "2026-10-31T23:59:59+00:00")
        add_call(conn, "other", "2026-11-01T10:04:00+00:00", account_id="B2")
    assert _selected(reports, {}) == {"in"}
    assert _selected(reports, {"call_types": [2]}) == {"out"}
    assert _selected(reports, {"call_types": [1, 2]}) == {"in", "out"}
    assert _selected(reports, {"call_types": [1, 2], "record_types": [2]}) == {"missed", "unknown"}
    assert _selected(reports, {"connections": [7]}) == {"in"}
    assert _selected(reports, {}, account=None) == {"in", "other"}  # an operator's report: every account


def test_errors_include_quarantined_rows_of_the_accounts_files(reports, store, tmp_path):
    add_carrier(reports, "acme", account_id="A1")
    path = tmp_path / "bad.csv"
    path.write_bytes(b"=cmd|' /C calc'!A0\n")
    file_id = register_file(reports, store, path, file_name="bad.csv", carrier="acme", file_source="upload").file_id
    with reports.begin() as conn:
        conn.execute(
            text("INSERT INTO rejected_rows (file_id, line_number, raw_text, reasons) VALUES (:f, 1, :t, :r)"),
            {"f": file_id, "t": "=cmd|' /C calc'!A0", "r": ["too_few_columns", "no_start_time"]},
        )
        now = datetime.now(UTC)
        add_call(conn, "err", (now - timedelta(minutes=30)).isoformat(), record_type="error")
        since = (now - timedelta(hours=1)).isoformat()
        request = requests.create(conn, requests.validate({"start_time": since, "record_types": [3]}), "A1")
    sel = query.Selection.of(request)
    with reports.connect() as conn:
        rows = conn.execute(query.report_select(sel)).all()
        assert [(r.record_type, r.call_leg_id, r.raw_line, r.reasons) for r in rows] == [
            ("error", "err", None, None),
            ("error", None, "'=cmd|' /C calc'!A0", "too_few_columns;no_start_time"),
        ]
        assert conn.execute(query.report_select(dataclasses.replace(sel, account_id="B2"))).all() == []
        with_filter = dataclasses.replace(sel, filters=[{"filter_type": "and", "cli": "1", "cli_filter": "contains"}])
        assert conn.execute(query.report_select(with_filter)).all() == []  # a quarantined row has no numbers


def test_the_formula_rule_in_sql_is_the_api_rule(reports):
    samples = ["=1+2", "@SUM(A1)", "\tx", "\rx", "+cmd", "-", "+", "-2+3+cmd|' /C calc'!A0", "+13125550001",
               "-1.5", "+61 2 9999 9999", "plain", "", "a=b", "+1 (555) 123-4567", "-5\n"]  # fmt: skip
    with reports.connect() as conn:
        for value in samples:
            in_sql = conn.execute(text("SELECT CAST(:v AS text) ~ :p"), {"v": value, "p": query.FORMULA}).scalar()
            assert in_sql == is_dangerous(value), repr(value)


def test_the_time_range_prunes_partitions(reports):
    with reports.begin() as conn:
        for month in ("2026-10-15", "2026-11-15", "2026-12-15"):
            add_call(conn, month, f"{month}T10:00:00+00:00")
        request = new_request(conn, DAY)
    raw = reports.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + query.render(cursor, query.report_select(query.Selection.of(request))))
        plan = "\n".join(r[0] for r in cursor.fetchall())
    finally:
        raw.close()
    assert "calls_2026_11" in plan and "calls_2026_10" not in plan and "calls_2026_12" not in plan


# -- building ------------------------------------------------------------------------------------


def _store(tmp_path: Path) -> str:
    return (tmp_path / "artifacts").as_uri()


def _file(uri: str) -> bytes:
    return Path(uri.removeprefix("file://")).read_bytes()


EXPECTED = HEADER + (
    "complete,inbound,acme,c1,b1,2026-11-01T10:00:00Z,2026-11-01T10:00:05Z,2026-11-01T10:01:05Z,65,60,"
    '+13125550001,+13125550001,0800 555,,"\'=HYPERLINK(""http://x"")","Smith, Ann",conn-1,vip;gold,'
    "NORMAL_CLEARING,16,ANSWERED,A1,u1,L,LO,7,3,,\n"
    "complete,inbound,acme,c2,,2026-11-01T11:00:00.5Z,,,65,60,'+cmd,,,,,,,,,,,A1,,,,7,3,,\n"
)


@pytest.fixture
def two_calls(reports):
    with reports.begin() as conn:
        add_call(conn, "c2", "2026-11-01T11:00:00.5+00:00", caller_number="+cmd")
        add_call(conn, "c1", "2026-11-01T10:00:00+00:00", other_leg_call_id="b1",
                 answer_time=datetime(2026, 11, 1, 10, 0, 5, tzinfo=UTC), end_time=datetime(2026, 11, 1, 10, 1, 5, tzinfo=UTC),
                 caller_number="+13125550001", caller_e164="+13125550001", callee_number="0800 555",
                 caller_name='=HYPERLINK("http://x")', callee_name="Smith, Ann", connection="conn-1",
                 tags=["vip", "gold"], hangup_cause="NORMAL_CLEARING", hangup_code=16, disposition="ANSWERED",
                 user_id="u1", call_type="L", call_sub_type="LO")  # fmt: skip
        add_call(conn, "elsewhere", "2026-11-01T10:30:00+00:00", account_id="B2")
    return reports


def test_a_built_report_is_the_expected_csv_with_its_size_and_sha256(two_calls, tmp_path):
    with two_calls.begin() as conn:
        request = new_request(conn, DAY)
    [done] = build.build_pending(two_calls, "w1", base_url=_store(tmp_path))
    assert done.status == "complete" and done.rows == 2
    content = _file(done.uri)
    assert content.decode() == EXPECTED
    row = status_of(two_calls, request.id)
    assert (row.status, row.bytes, row.sha256, row.row_count) == (
        2,
        len(content),
        hashlib.sha256(content).hexdigest(),
        2,
    )
    assert done.uri.endswith(f"/reports/{request.id}.csv")
    with two_calls.connect() as conn:
        stored = requests.get(conn, request.id, "A1", False)
    assert stored.completed_at is not None and stored.expires_at - stored.completed_at == timedelta(days=30)
    assert build.build_pending(two_calls, "w1", base_url=_store(tmp_path)) == []  # nothing left


def test_gzip_round_trip(two_calls, tmp_path):
    with two_calls.begin() as conn:
        request = new_request(conn, {**DAY, "gzip": True, "report_name": "nov"})
    [done] = build.build_pending(two_calls, "w1", base_url=_store(tmp_path))
    packed = _file(done.uri)
    assert done.uri.endswith(".csv.gz") and gzip.decompress(packed).decode() == EXPECTED
    assert status_of(two_calls, request.id).sha256 == hashlib.sha256(packed).hexdigest()
    with two_calls.connect() as conn:
        assert requests.get(conn, request.id, "A1", False).filename() == "nov.csv.gz"


def test_concurrent_builders_never_build_the_same_request(reports, tmp_path):
    with reports.begin() as conn:
        for i in range(40):
            add_call(conn, f"c{i}", f"2026-11-01T10:{i:02d}:00+00:00")
        made = [new_request(conn, DAY).id for _ in range(12)]
    results: dict[str, list[build.Outcome]] = {}
    start = threading.Barrier(4)

    def builder(name: str) -> None:
        start.wait()
        results[name] = build.build_pending(reports, name, base_url=_store(tmp_path))

    threads = [threading.Thread(target=builder, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    built = [o.request_id for outcomes in results.values() for o in outcomes]
    assert sorted(built) == sorted(made)  # each once
    assert all(o.status == "complete" and o.rows == 40 for outcomes in results.values() for o in outcomes)
    with reports.connect() as conn:
        claimed = dict(conn.execute(text("SELECT id::text, claimed_by FROM report_requests")).all())
    assert {i: claimed[i] for i in built} == {o.request_id: w for w, outs in results.items() for o in outs}


def test_a_dead_builders_claim_is_taken_after_its_lease(reports, tmp_path):
    with reports.begin() as conn:
        add_call(conn, "c1", "2026-11-01T10:00:00+00:00")
        request = new_request(conn, DAY)
    assert build.claim_next(reports, "dead").id == request.id  # then the process died
    assert build.claim_next(reports, "next") is None  # its lease still runs
    taken = build.claim_next(reports, "next", lease=timedelta(0))
    assert taken is not None and taken.id == request.id
    late = build.build(reports, request, "dead", _store(tmp_path))  # the first builder comes back
    assert late.status == "discarded" and not list((tmp_path / "artifacts" / "reports").iterdir())
    assert build.build(reports, taken, "next", _store(tmp_path)).status == "complete"


def test_builds_that_keep_dying_end_as_failed(reports):
    with reports.begin() as conn:
        request = new_request(conn, DAY)
    for _ in range(build.MAX_ATTEMPTS):
        assert build.claim_next(reports, "dies", lease=timedelta(0)) is not None
    assert build.give_up_abandoned(reports, lease=timedelta(0)) == [request.id]
    assert status_of(reports, request.id).status == 3


def test_a_request_deleted_while_building_keeps_no_file(two_calls, tmp_path):
    with two_calls.begin() as conn:
        request = new_request(conn, DAY)
    claimed = build.claim_next(two_calls, "w1")
    with two_calls.begin() as conn:
        assert requests.delete(conn, request.id, "A1", False) is not None
    assert build.build(two_calls, claimed, "w1", _store(tmp_path)).status == "discarded"
    assert not list((tmp_path / "artifacts" / "reports").iterdir())


def test_a_failing_build_is_marked_failed_with_a_reason_and_can_be_retried(two_calls, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with two_calls.begin() as conn:
        request = new_request(conn, DAY)
    [done] = build.build_pending(two_calls, "w1", base_url=blocker.as_uri())
    row = status_of(two_calls, request.id)
    assert done.status == "failed" and row.status == 3
    assert row.failure_reason.startswith("artifact store") and "cannot write" in row.failure_reason
    assert build.requeue_failed(two_calls, [request.id]) == [request.id]
    [again] = build.build_pending(two_calls, "w1", base_url=_store(tmp_path))
    assert again.status == "complete" and status_of(two_calls, request.id).failure_reason is None


def test_the_command_builds_pending_requests(two_calls, warehouse_url, tmp_path):
    with two_calls.begin() as conn:
        request = new_request(conn, DAY)
    env = {"CDRFLOW_DATABASE_URL": warehouse_url, "CDRFLOW_ARTIFACT_STORE": _store(tmp_path)}
    out = run_cli("reports", "build", "--once", env=env)
    assert out.returncode == 0, out.stderr
    assert f"report {request.id}: complete, 2 rows" in out.stdout
    assert run_cli("reports", "build", env=env).stdout.strip() == "no pending report request"


# -- housekeeping ----------------------------------------------------------------------------------


def test_housekeeping_deletes_expired_files_and_marks_them_expired(two_calls, tmp_path):
    with two_calls.begin() as conn:
        old, fresh = new_request(conn, DAY), new_request(conn, DAY)
    outcomes = {o.request_id: o for o in build.build_pending(two_calls, "w1", base_url=_store(tmp_path))}
    with two_calls.begin() as conn:
        conn.execute(
            text("UPDATE report_requests SET expires_at = now() - interval '1 s' WHERE id = :id"), {"id": old.id}
        )
    part = tmp_path / "artifacts" / "reports" / ".dead.csv.part"
    part.write_bytes(b"half")
    done = housekeeping.run(two_calls, _store(tmp_path))
    assert done.expired == [old.id] and done.files_deleted == 1 and done.problems == {}
    assert done.parts_deleted == []  # younger than a lease: a build may still be writing it
    assert not Path(outcomes[old.id].uri.removeprefix("file://")).exists()
    assert Path(outcomes[fresh.id].uri.removeprefix("file://")).exists()
    assert status_of(two_calls, old.id).status == 4 and status_of(two_calls, fresh.id).status == 2
    assert housekeeping.run(two_calls, _store(tmp_path)).expired == []  # again: nothing to do
    assert housekeeping.stale_parts(_store(tmp_path), older_than=timedelta(0)) == [str(part)]


@pytest.mark.integration
def test_a_report_built_into_s3_and_removed_from_it(two_calls, s3_server, monkeypatch):
    """The artifact store on S3 (moto on loopback): the same bytes, gzipped, then deleted."""
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_S3", s3_server.airflow_conn_json())
    bucket = s3_server.create_bucket()
    with two_calls.begin() as conn:
        request = new_request(conn, {**DAY, "gzip": True})
    [done] = build.build_pending(two_calls, "w1", base_url=f"s3://reports_s3@{bucket}/cdr")
    assert done.status == "complete" and done.uri == f"s3://reports_s3@{bucket}/cdr/reports/{request.id}.csv.gz"
    stored = s3_server.get(bucket, f"cdr/reports/{request.id}.csv.gz")
    assert gzip.decompress(stored).decode() == EXPECTED and hashlib.sha256(stored).hexdigest() == done.sha256
    with two_calls.begin() as conn:
        conn.execute(text("UPDATE report_requests SET expires_at = now() WHERE id = :id"), {"id": request.id})
    assert housekeeping.expire(two_calls).files_deleted == 1
    assert s3_server.keys(bucket) == []
