"""Validation is a policy, not a wall; nothing disappears without a count (issue 10, items 3, 5).

Real Asterisk traffic: ``Local/`` channels dial extensions ``s``, ``h`` and named ones (``ch1``),
and a ``cdr_custom`` export's ``src`` can be a SIP endpoint name (``client1``). Such rows are
odd, not wrong: they load, flagged in ``calls.quality``. Structure still rejects, carriers and
mappings choose otherwise, a failed file can be accepted, and every record of a file is
counted: read = loaded + flagged + rejected + repeats.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text
from tests.test_loader import q, register

from cdrflow.config.carrier_file import parse as parse_carriers
from cdrflow.config.errors import CdrflowError, ConfigurationError
from cdrflow.formats.mapping_schema import MappingError, check_mapping
from cdrflow.loading.batches import process_batch
from cdrflow.loading.transaction import load_file
from cdrflow.orchestration.params import file_id_list
from conftest import add_carrier, run_cli

CALLEE = "expect_column_values_to_match_regex(callee_number)"
CALLER = "expect_column_values_to_match_regex(caller_number)"
DISPOSITION = "expect_column_values_to_be_in_set(disposition)"
BILLED = "expect_column_pair_values_a_to_be_greater_than_b(duration_seconds,billing_seconds)"


def rec(uid: str, *, src="+15551230001", dst="+442071230001", duration=65, billsec=60, disposition="ANSWERED"):
    """One 18-column Master.csv line (Asterisk cdr_csv), every field quoted."""
    fields = [
        "acct1", src, dst, "from-trunk", f'"Alice" <{src}>', "SIP/a-1", f"SIP/b-{uid}", "Dial", "SIP/b,60",
        "2026-11-01 09:00:00", "2026-11-01 09:00:05", "2026-11-01 09:01:05",
        str(duration), str(billsec), disposition, "DOCUMENTATION", uid, "",
    ]  # fmt: skip
    return ",".join('"' + f.replace('"', '""') + '"' for f in fields) + "\n"


def good(n: int, prefix: str = "g") -> str:
    return "".join(rec(f"{prefix}{i}") for i in range(n))


# Local/ channels dial dialplan extensions; a named endpoint calls out
ODD = rec("odd1", dst="s") + rec("odd2", dst="h") + rec("odd3", dst="ch1") + rec("odd4", src="client1")


@pytest.fixture
def acme(engine) -> str:
    return add_carrier(engine, "acme", file_type="asterisk_csv")


def _file(engine, file_id: int):
    (row,) = q(
        engine,
        "SELECT status, lines, calls_loaded, calls_flagged, calls_rejected, calls_duplicate, processing_log "
        "FROM cdr_files WHERE id = :i",
        i=file_id,
    )
    return row


def _adds_up(row) -> None:
    assert row.lines == row.calls_loaded + row.calls_rejected + row.calls_duplicate


def test_extensions_and_named_endpoints_load_flagged_and_analysts_can_filter_them(engine, store, acme):
    reg = register(engine, store, (good(16) + ODD).encode())
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.loaded, result.flagged, result.rejected) == ("loaded", 20, 4, 0)
    flagged = q(engine, "SELECT callee_number, caller_number, quality FROM calls WHERE quality IS NOT NULL ORDER BY 1")
    assert [(r.callee_number, r.caller_number, r.quality) for r in flagged] == [
        ("+442071230001", "client1", [CALLER]),
        ("ch1", "+15551230001", [CALLEE]),
        ("h", "+15551230001", [CALLEE]),
        ("s", "+15551230001", [CALLEE]),
    ]
    # the analysts' filter of the README
    assert q(engine, "SELECT count(*) FROM calls WHERE quality ? :c", c=CALLEE)[0][0] == 3
    assert q(engine, "SELECT count(*) FROM calls WHERE quality IS NULL")[0][0] == 16
    row = _file(engine, reg.file_id)
    assert (row.calls_loaded, row.calls_flagged, row.calls_rejected) == (20, 4, 0)
    assert q(engine, "SELECT count(*) FROM rejected_rows")[0][0] == 0
    assert f"{CALLEE}: FAILED for 3 row(s) (flagged, loaded)" in row.processing_log


def test_structural_failures_still_reject(engine, store, acme):
    data = good(38) + rec("neg", duration=-5, billsec=0) + rec("over", duration=10, billsec=20) + ODD
    reg = register(engine, store, data.encode())
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.loaded, result.flagged, result.rejected) == ("loaded", 42, 4, 2)
    reasons = {r.line_number: r.reasons for r in q(engine, "SELECT line_number, reasons FROM rejected_rows")}
    assert sorted(reasons) == [39, 40] and all(BILLED in r for r in reasons.values())  # (ringing = duration - billsec)
    assert "expect_column_values_to_be_between(duration_seconds)" in reasons[39]


def test_a_carrier_turns_a_flag_into_reject_and_another_into_fail(engine, store):
    add_carrier(engine, "strict", file_type="asterisk_csv", config={"checks": {"callee_number": "reject"}})
    reg = register(engine, store, (good(60) + ODD).encode(), carrier="strict")
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.loaded, result.flagged, result.rejected) == ("loaded", 61, 1, 3)
    assert sorted(r.line_number for r in q(engine, "SELECT line_number FROM rejected_rows")) == [61, 62, 63]

    add_carrier(engine, "fussy", file_type="asterisk_csv", config={"checks": {DISPOSITION: "fail"}})
    reg = register(engine, store, (good(99, "f") + rec("odd", disposition="MAYBE")).encode(), carrier="fussy")
    result = load_file(engine, store, reg.file_id)
    assert result.status == "failed" and result.rejected == 1  # 1% is under the threshold: fail decided it
    row = _file(engine, reg.file_id)
    assert row.status == "failed" and f"rows failed checks of severity fail: {DISPOSITION} 1" in row.processing_log
    assert q(engine, "SELECT count(*) FROM calls WHERE file_id = :i", i=reg.file_id)[0][0] == 0
    assert q(engine, "SELECT reasons FROM rejected_rows WHERE file_id = :i", i=reg.file_id)[0][0] == [DISPOSITION]


MAPPING = """
header: true
timestamp_format: "%Y-%m-%d %H:%M:%S"
columns: {carrier_call_id: id, start_time: start, caller_number: from, callee_number: to, duration_seconds: secs}
"""


def test_a_mapping_sets_severities_and_the_carrier_overrides_the_mapping(engine, store, tmp_path):
    data = b"id,start,from,to,secs\n" + b"".join(
        f"m{i},2026-11-01 09:00:00,{'alice' if i < 2 else '15551230001'},{'s' if i == 2 else '100'},30\n".encode()
        for i in range(10)
    )
    path = tmp_path / "pbx.yaml"
    path.write_text(MAPPING + "checks: {caller_number: reject}\n")
    add_carrier(engine, "pbx", file_type="mapped", mapping=str(path))
    result = load_file(engine, store, register(engine, store, data, "a.csv", carrier="pbx").file_id)
    assert (result.status, result.loaded, result.flagged, result.rejected) == ("failed", 0, 0, 2)  # 20% > 5%

    add_carrier(engine, "pbx2", file_type="mapped", mapping=str(path), config={"checks": {CALLER: "flag"}})
    more = data + b"m10,2026-11-01 09:00:00,15551230001,100,30\n"  # other bytes: not a duplicate file
    result = load_file(engine, store, register(engine, store, more, "b.csv", carrier="pbx2").file_id)
    assert (result.status, result.loaded, result.flagged, result.rejected) == ("loaded", 11, 3, 0)

    with pytest.raises(MappingError, match=r"checks: caller_number: unknown severity 'ignore'"):
        check_mapping({"columns": {"carrier_call_id": 0, "start_time": 1}, "checks": {"caller_number": "ignore"}})


def test_unknown_check_names_or_severities_are_one_line_configuration_errors():
    def carrier(checks: str) -> None:
        parse_carriers(f"carriers: [{{code: acme, file_type: asterisk_csv, checks: {checks}}}]")

    with pytest.raises(ConfigurationError, match=r"^carrier acme: checks: unknown check 'calee_number' for asterisk"):
        carrier("{calee_number: reject}")
    with pytest.raises(ConfigurationError, match=r"^carrier acme: checks: callee_number: unknown severity 'drop'"):
        carrier("{callee_number: drop}")
    with pytest.raises(ConfigurationError, match=r"^carrier acme: checks: start_time is ambiguous"):
        carrier("{start_time: flag}")
    parsed = parse_carriers("carriers: [{code: acme, file_type: asterisk_csv, checks: {callee_number: reject}}]")
    assert parsed[0].carrier.config["checks"] == {CALLEE: "reject"}  # stored by its full name


def test_the_threshold_counts_rejected_rows_only(engine, store, acme):
    flagged = "".join(rec(f"s{i}", dst="s") for i in range(30))  # 30% of the file flagged
    rejected = "".join(rec(f"r{i}", duration=-1, billsec=0) for i in range(4))  # 4% rejected
    reg = register(engine, store, (good(66) + flagged + rejected).encode())
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.loaded, result.flagged, result.rejected) == ("loaded", 96, 30, 4)

    reg = register(engine, store, (good(60, "x") + rejected + rec("r5", duration=-1, billsec=0)).encode(), "b.csv")
    assert load_file(engine, store, reg.file_id).status == "failed"  # 5 of 65 rejected: 7.7%


def test_an_operator_accepts_a_failed_file_from_the_dag_and_its_quarantine_is_kept(engine, store, acme):
    bad = "".join(rec(f"b{i}", duration=-1, billsec=0) for i in range(3))
    reg = register(engine, store, (good(17) + bad + ODD).encode())
    assert load_file(engine, store, reg.file_id).status == "failed"

    accept = file_id_list(f" {reg.file_id}, ")  # typed into the form as text
    outcome = process_batch(engine, store, [reg.file_id], accept=accept, accepted_by="the processing run manual__1")
    (result,) = outcome.results
    assert (result.status, result.accepted, result.loaded, result.flagged, result.rejected) == (
        "loaded",
        True,
        21,
        4,
        3,
    )
    row = _file(engine, reg.file_id)
    assert row.status == "loaded" and (row.calls_loaded, row.calls_flagged, row.calls_rejected) == (21, 4, 3)
    assert (
        "accepted by the processing run manual__1 although 3 of 24 lines rejected (12.5% > threshold 5%); "
        "its quarantine is kept"
    ) in row.processing_log
    assert sorted(r.line_number for r in q(engine, "SELECT line_number FROM rejected_rows")) == [18, 19, 20]
    _adds_up(row)


def test_the_dags_accept_param_reads_lists_and_typed_text():
    assert file_id_list([3, 4]) == [3, 4]
    assert file_id_list(["3", "4"]) == [3, 4]  # one per line in the form
    assert file_id_list("3, 4") == [3, 4]
    assert file_id_list("3 4;5,3") == [3, 4, 5]
    assert file_id_list(None) == file_id_list("") == file_id_list([]) == []
    with pytest.raises(CdrflowError, match=r"^accept_file_ids: 'x' is not a file id"):
        file_id_list("3, x", "accept_file_ids")


def test_the_dag_declares_the_accept_param(dagbag):
    param = dagbag.dags["cdrflow_process"].params.get_param("accept_file_ids")
    assert param.value is None and param.resolve("3, 4, 10-12") == "3, 4, 10-12"  # a text field, not a JSON editor


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    from conftest import REPO

    return DagBag(dag_folder=str(REPO / "dags"))


def test_cdrflow_load_accept_loads_a_failed_file_with_its_quarantine(tmp_path, new_database):
    url = new_database()
    env = {"CDRFLOW_DATABASE_URL": url, "CDRFLOW_STATE_DIR": str(tmp_path / "state")}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    assert run_cli("carrier", "add", "acme", "--type", "asterisk_csv", env=env).returncode == 0
    path = tmp_path / "Master.csv"
    path.write_text(good(18) + rec("b1", duration=-1, billsec=0) + rec("b2", duration=-1, billsec=0))
    failed = run_cli("load", str(path), "--carrier", "acme", env=env)
    assert failed.returncode == 1 and "file 1: failed" in failed.stdout
    assert "--accept" in run_cli("load", str(path), "--carrier", "acme", env=env).stderr
    accepted = run_cli("load", str(path), "--carrier", "acme", "--accept", env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert "file 1: loaded (accepted over its threshold): 20 lines, 18 calls loaded, 2 rejected" in accepted.stdout
    engine = create_engine(url)
    with engine.connect() as conn:
        log = conn.execute(text("SELECT processing_log FROM cdr_files WHERE id = 1")).scalar()
        assert conn.execute(text("SELECT count(*) FROM rejected_rows WHERE file_id = 1")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 18
    engine.dispose()
    assert "accepted by `cdrflow load --accept` although 2 of 20 lines rejected (10.0% > threshold 5%)" in log


def test_every_record_is_counted_in_the_log_cdr_files_and_the_task_log(engine, store, acme):
    data = good(30) + rec("g3") + ODD + rec("neg", duration=-1, billsec=0) + rec("g0")  # lines 31 and 37 repeat
    first = register(engine, store, data.encode())
    said: list[str] = []
    result = load_file(engine, store, first.file_id, progress=said.append)
    assert (result.lines, result.loaded, result.flagged, result.rejected, result.duplicates) == (37, 34, 4, 1, 2)
    row = _file(engine, first.file_id)
    equation = "records: 37 read = 30 loaded + 4 flagged + 1 rejected + 2 repeats"
    assert equation in row.processing_log and (row.calls_flagged, row.calls_duplicate) == (4, 2)
    _adds_up(row)
    assert "repeats: line 31 repeats line 4; line 37 repeats line 1" in row.processing_log
    assert f"top failing checks: {CALLEE} (flag) 3; " in row.processing_log
    assert any(equation in line for line in said) and any("line 31 repeats line 4" in line for line in said)

    # the same records in another file: refused by the primary key, named with the file and line
    second = register(engine, store, (rec("g5") + rec("new") + rec("g7")).encode(), "again.csv")
    said.clear()
    result = load_file(engine, store, second.file_id, progress=said.append)
    assert (result.lines, result.loaded, result.duplicates) == (3, 1, 2)
    row = _file(engine, second.file_id)
    assert "records: 3 read = 1 loaded + 0 flagged + 0 rejected + 2 repeats" in row.processing_log
    listed = f"repeats: line 1 repeats file {first.file_id} line 6; line 3 repeats file {first.file_id} line 8"
    assert listed in row.processing_log and any(listed in line for line in said)
    _adds_up(row)


def test_long_repeat_lists_are_capped(engine, store, acme):
    data = good(30) + good(30)  # the second half repeats the first
    reg = register(engine, store, data.encode())
    load_file(engine, store, reg.file_id)
    log = _file(engine, reg.file_id).processing_log
    assert "line 31 repeats line 1; " in log and "line 50 repeats line 20; and 10 more" in log
    assert "line 51 repeats" not in log


def test_parse_prints_the_counts_the_top_checks_and_the_repeats(tmp_path):
    path = tmp_path / "Master.csv"
    path.write_text(good(5) + ODD + rec("g1") + rec("neg", duration=-1, billsec=0) + '"only","three","columns"\n')
    out = run_cli("parse", "--type", "asterisk_csv", "--output", "jsonl", str(path))
    assert out.returncode == 0, out.stderr
    assert "records: 12 read = 5 loaded + 4 flagged + 2 rejected + 1 repeats" in out.stderr
    assert "repeats: line 10 repeats line 2" in out.stderr
    assert f"top failing checks: {CALLEE} (flag) 3; " in out.stderr and "parse:column_count (reject) 1" in out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 9 and sorted(r["quality"] for r in records if r["quality"]) == sorted(
        [json.dumps([CALLEE])] * 3 + [json.dumps([CALLER])]
    )


def test_small_files_of_two_carriers_prepared_together_each_follow_their_own_policy(engine, store):
    add_carrier(engine, "lax", file_type="asterisk_csv")
    add_carrier(engine, "strict", file_type="asterisk_csv", config={"checks": {"callee_number": "reject"}})
    lax = register(engine, store, (good(40, "l") + ODD + rec("l1")).encode(), "lax.csv", carrier="lax")
    strict = register(engine, store, (good(80, "s") + ODD).encode(), "strict.csv", carrier="strict")
    outcome = process_batch(engine, store, [lax.file_id, strict.file_id])  # one group: parsed, validated together
    got = {r.file_id: (r.status, r.loaded, r.flagged, r.rejected, r.duplicates) for r in outcome.results}
    assert got == {lax.file_id: ("loaded", 44, 4, 0, 1), strict.file_id: ("loaded", 81, 1, 3, 0)}
    log = _file(engine, lax.file_id).processing_log
    assert "records: 45 read = 40 loaded + 4 flagged + 0 rejected + 1 repeats" in log
    assert "repeats: line 45 repeats line 2" in log
    _adds_up(_file(engine, strict.file_id))


def test_parse_with_a_carrier_uses_its_checks_and_dial_plan(tmp_path):
    """`cdrflow parse --carrier`: the dry run of what loading that carrier's file would do."""
    carriers = tmp_path / "carriers.yaml"
    carriers.write_text(
        "carriers:\n"
        "  - code: moscow\n"
        "    file_type: asterisk_csv\n"
        "    dial_plan: {country: RU}\n"
        "    checks: {callee_number: reject}\n"
    )
    path = tmp_path / "Master.csv"
    path.write_text(rec("ru1", src="89161234567", dst="810442071230001") + rec("ru2", dst="s"))
    env = {"CDRFLOW_CARRIERS_FILE": str(carriers)}
    out = run_cli("parse", "--carrier", "moscow", "--output", "jsonl", str(path), env=env)
    assert out.returncode == 0, out.stderr
    (record,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert (record["caller_e164"], record["callee_e164"]) == ("+79161234567", "+442071230001")
    assert "records: 2 read = 1 loaded + 0 flagged + 1 rejected + 0 repeats" in out.stderr
    assert f"rejected line 2: {CALLEE}" in out.stderr  # the carrier's severity, not the suite's flag
    unknown = run_cli("parse", "--carrier", "nosuch", str(path), env=env)
    assert unknown.returncode != 0 and "no carrier 'nosuch'" in unknown.stderr and "known: moscow" in unknown.stderr
