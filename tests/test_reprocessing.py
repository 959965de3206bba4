"""Reprocessing a loaded file: the earlier load stands until the new one commits, and a call
that another loaded file also carries is never lost."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from tests.test_loader import ROW, q, register, rows

from cdrflow.intake.claims import requeue
from cdrflow.loading.transaction import load_file
from cdrflow.warehouse import carriers
from conftest import add_carrier

M_IDS = [f"u{i}" for i in range(100)]
X_IDS = M_IDS[70:] + [f"x{i}" for i in range(10)]  # 30 of M's calls, and 10 of its own
BROKEN = ROW.format(uid="bad").replace("2026-11-01 09:00:00", "2026-13-01 09:00:00").encode()


@pytest.fixture
def loaded_m_and_x(engine, store):
    add_carrier(engine, "acme", file_type="asterisk_csv")
    m = register(engine, store, rows(*M_IDS) + BROKEN, "M.csv").file_id  # 1 bad line of 101: under 5%
    x = register(engine, store, rows(*X_IDS), "X.csv").file_id
    assert load_file(engine, store, m).loaded == 100
    assert (load_file(engine, store, x).loaded, _counts(engine, x)[2]) == (10, 30)
    return m, x


def _counts(engine, file_id: int) -> tuple:
    return tuple(
        q(
            engine,
            "SELECT status, calls_loaded, calls_duplicate, calls_rejected FROM cdr_files WHERE id = :i",
            i=file_id,
        )[0]
    )


def _calls(engine) -> dict[str, int]:
    return dict(q(engine, "SELECT carrier_call_id, file_id FROM calls"))


def _set_threshold(engine, threshold: float) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE carriers SET reject_threshold = :t"), {"t": threshold})


def test_a_rerun_that_fails_leaves_the_earlier_load_and_the_other_files_calls_as_they_were(
    engine, store, loaded_m_and_x
):
    m, x = loaded_m_and_x
    before = q(engine, "SELECT id, carrier_call_id, file_id, line_number FROM calls ORDER BY id")
    quarantine = q(engine, "SELECT line_number, reasons FROM rejected_rows WHERE file_id = :i", i=m)
    _set_threshold(engine, 0.0)  # the one bad line of M is now too many
    requeue(engine, [m], "operator re-run")

    result = load_file(engine, store, m)

    assert result.status == "failed" and "the earlier load stands (100 calls)" in result.message
    assert q(engine, "SELECT id, carrier_call_id, file_id, line_number FROM calls ORDER BY id") == before
    assert len(before) == 110 and sum(1 for r in before if r.file_id == x) == 10
    assert _counts(engine, m) == ("loaded", 100, 0, 1) and _counts(engine, x) == ("loaded", 10, 30, 0)
    assert q(engine, "SELECT line_number, reasons FROM rejected_rows WHERE file_id = :i", i=m) == quarantine
    assert q(engine, "SELECT sum(calls) FROM call_days")[0][0] == 110
    (log_text,) = q(engine, "SELECT processing_log FROM cdr_files WHERE id = :i", i=m)[0]
    assert "status loaded: re-run failed, nothing changed: the earlier load stands" in log_text


def test_rerunning_a_file_hands_the_calls_another_file_carries_over_to_that_file(engine, store, loaded_m_and_x):
    m, x = loaded_m_and_x
    requeue(engine, [m], "operator re-run")

    result = load_file(engine, store, m)

    assert (result.status, result.loaded, result.duplicates) == ("loaded", 70, 30)
    owners = _calls(engine)
    assert len(owners) == 110  # no call lost, none twice
    assert {owners[c] for c in M_IDS[70:]} == {x} and {owners[c] for c in M_IDS[:70]} == {m}
    assert _counts(engine, m)[:3] == ("loaded", 70, 30) and _counts(engine, x)[:3] == ("loaded", 40, 0)
    assert q(engine, "SELECT sum(calls_loaded) FROM cdr_files")[0][0] == 110
    (line,) = q(engine, "SELECT line_number FROM calls WHERE carrier_call_id = 'u70'")[0]
    assert line == 1  # u70 is X's first line
    (log_text,) = q(engine, "SELECT processing_log FROM cdr_files WHERE id = :i", i=x)[0]
    assert f"30 call(s) of file {m} (being reprocessed) are this file's now" in log_text

    # and back: reprocessing X now hands those 30 calls to M, which carries them too
    requeue(engine, [x], "operator re-run")
    again = load_file(engine, store, x)
    assert (again.loaded, again.duplicates) == (10, 30)
    assert len(_calls(engine)) == 110 and {_calls(engine)[c] for c in M_IDS} == {m}
    assert q(engine, "SELECT sum(calls) FROM call_days")[0][0] == 110


def test_a_rerun_that_moves_its_calls_keeps_those_another_file_carries(engine, store, loaded_m_and_x):
    m, x = loaded_m_and_x
    with engine.begin() as conn:  # the carrier's time zone was wrong: M's calls move by five hours
        conn.execute(text("""UPDATE carriers SET config = '{"timezone": "America/New_York"}'"""))
    requeue(engine, [m], "time zone corrected")

    assert load_file(engine, store, m).loaded == 100

    by_file = dict(q(engine, "SELECT file_id, count(*) FROM calls GROUP BY file_id"))
    assert by_file == {m: 100, x: 40}  # X keeps the 30 calls it carries, at the times it gave
    assert (
        q(engine, "SELECT count(*) FROM calls WHERE file_id = :i AND start_time = '2026-11-01 09:00:00+00'", i=x)[0][0]
        == 40
    )
    assert q(engine, "SELECT sum(calls) FROM call_days")[0][0] == 140
