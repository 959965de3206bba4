"""A processing run that leaves files failed or rejected shows it at a glance (the run ends
failed, or with CDRFLOW_ATTENTION=warn successful with a warning), and its summary is the first
thing in the report task's log; library chatter stays out of the task logs."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from tests.airflow_runs import airflow_db, dagbag, pipeline
from tests.test_loader import q, register, rows

from cdrflow.orchestration import attention, quiet_logs
from conftest import REPO, add_carrier

BAD_DATE = (b"2026-11-01 09:00:00", b"2026-13-01 09:00:00")


@pytest.fixture
def three_files(pipeline, engine, store) -> dict[str, int]:
    """acme: a good file, one with half its lines broken (failed: over the 5% threshold) and one
    that is not an Asterisk file at all (rejected)."""
    pipeline.configure([{"code": "acme", "file_type": "asterisk_csv"}])
    add_carrier(engine, "acme", file_type="asterisk_csv")
    broken = rows(*[f"b{i}" for i in range(10)]).replace(*BAD_DATE)
    return {
        "good": register(engine, store, rows(*[f"g{i}" for i in range(20)]), "good.csv").file_id,
        "failed": register(engine, store, rows(*[f"f{i}" for i in range(10)]) + broken, "half.csv").file_id,
        "rejected": register(engine, store, b"\x00\x01\x02 not a csv at all\n" * 3, "junk.csv").file_id,
    }


def _task_records(caplog, task_id: str) -> list[logging.LogRecord]:
    """The records logged while ``task_id`` ran (between dag.test's start and end lines for
    it), without Airflow's own machinery (task runner, execution API, dag.test)."""
    out, inside = [], False
    for r in caplog.records:
        message = r.getMessage()
        if message.startswith(f"[DAG TEST] starting task_id={task_id} "):
            inside = True
        elif message.startswith(f"[DAG TEST] end task task_id={task_id} "):
            inside = False
        elif inside and not r.name.startswith(("airflow.", "task", "py.warnings")):
            out.append(r)
    return out


def test_a_run_with_failed_and_rejected_files_ends_failed_with_the_summary_first(
    pipeline, engine, three_files, caplog, monkeypatch
):
    monkeypatch.delenv(attention.ENV, raising=False)  # the default: fail
    monkeypatch.setenv(attention.FILE_URL_ENV, "http://ops.example/cdr/files/{id}")
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="cdrflow")  # a CLI test may have left cdrflow at WARNING

    run = pipeline.process()

    assert run.state == "failed"  # red in the grid
    assert run.tasks == {
        "claim": ["success"],  # housekeeping runs in it, before the claim
        "process": ["success"],
        "report": ["failed"],
    }
    good, failed, rejected = three_files["good"], three_files["failed"], three_files["rejected"]
    assert dict(q(engine, "SELECT id, status FROM cdr_files")) == {
        good: "loaded",
        failed: "failed",
        rejected: "rejected",
    }
    first = _task_records(caplog, "report")[0]
    assert first.levelno == logging.ERROR and first.name == "cdrflow.processing"
    lines = first.getMessage().splitlines()
    assert lines[0].startswith(
        f"ATTENTION: 2 of 3 file(s) of processing run {run.dag_run.run_id} need attention (1 failed, 1 rejected): "
        f"file {failed} failed, file {rejected} rejected"
    )
    assert lines[1].startswith("files by status: 1 failed, 1 loaded, 1 rejected; 20 calls loaded")
    assert lines[2].startswith(
        f"  file {failed} half.csv (acme) failed: 10 of 20 lines rejected (50.0% > threshold 5%)"
    )
    assert lines[2].endswith(f"-> http://ops.example/cdr/files/{failed}")
    assert lines[3] == (
        f"  file {rejected} junk.csv (acme) rejected: binary data, not an Asterisk Master.csv "
        f"-> http://ops.example/cdr/files/{rejected}"
    )
    assert lines[4] == "top rejection reasons: parse:start_time:unparseable '2026-13-01 09:00:00': 10"
    assert (
        lines[5] == f"see a file (its log, its quarantine, its calls): cdrflow file {failed}, cdrflow file {rejected}"
    )
    assert f'Reprocess file ids "{failed}, {rejected}"' in lines[6] and f'Accept file ids "{failed}"' in lines[6]
    assert lines[7] == "CDRFLOW_ATTENTION=fail: this run ends failed, so it shows red"

    again = pipeline.process()  # failed files are not taken again: the next run is green
    assert again.state == "success" and again.tasks["process"] == ["skipped"]


def test_with_attention_warn_the_run_succeeds_and_the_summary_still_says_it(
    pipeline, engine, three_files, caplog, monkeypatch
):
    monkeypatch.setenv(attention.ENV, "warn")
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="cdrflow")  # a CLI test may have left cdrflow at WARNING

    run = pipeline.process()

    assert run.state == "success", run.tasks
    summary = run.xcom("report")[0]
    assert summary["attention"] == [three_files["failed"], three_files["rejected"]]
    assert summary["by_status"] == {"loaded": 1, "failed": 1, "rejected": 1}
    first = _task_records(caplog, "report")[0]
    assert first.levelno == logging.WARNING
    assert first.getMessage().startswith("ATTENTION: 2 of 3 file(s)")
    assert first.getMessage().endswith("CDRFLOW_ATTENTION=warn: this run ends successful (warn)")


def test_the_library_loggers_are_quiet_inside_the_processing_task(pipeline, engine, three_files, caplog, monkeypatch):
    for name in quiet_logs.NOISY:  # as a fresh worker process would have them: open
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    seen: dict[str, int] = {}

    class Probe(logging.Handler):  # the levels in force while the loader logs, inside the task
        def emit(self, record):
            seen.update({name: logging.getLogger(name).getEffectiveLevel() for name in quiet_logs.NOISY})

    probe = Probe()
    logging.getLogger("cdrflow.loading.batches").addHandler(probe)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="cdrflow")  # a CLI test may have left cdrflow at WARNING
    monkeypatch.setenv(attention.ENV, "warn")
    try:
        run = pipeline.process()
    finally:
        logging.getLogger("cdrflow.loading.batches").removeHandler(probe)

    assert run.state == "success", run.tasks
    assert seen and min(seen.values()) >= logging.WARNING, seen
    chatter = [r for r in caplog.records if r.name.split(".")[0] in {n.split(".")[0] for n in quiet_logs.NOISY}]
    assert [r for r in chatter if r.levelno < logging.WARNING] == []
    assert any(r.name == "cdrflow.loading.batches" for r in caplog.records)  # cdrflow's own lines stay


def test_a_worker_that_parses_a_dag_file_then_imports_great_expectations_logs_none_of_its_chatter():
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(name)s %(message)s')\n"
        "if sys.argv[1] == 'dag':\n"
        "    import runpy; runpy.run_path(sys.argv[2])\n"
        "import great_expectations\n"
    )
    dag_file = str(REPO / "dags" / "cdrflow_register_folder.py")

    def chatter(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", script, mode, dag_file], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.count("Skipping registering function")

    assert chatter("bare") > 100  # what a task log showed (about 200 lines)
    assert chatter("dag") == 0


def test_a_clean_run_summary_says_so_in_one_line_and_links_nothing(monkeypatch):
    monkeypatch.delenv(attention.FILE_URL_ENV, raising=False)
    totals = {
        "files": 2,
        "by_status": {"loaded": 2},
        "calls_loaded": 1200,
        "calls_flagged": 3,
        "rows_rejected": 4,
        "duplicates": 0,
    }
    summary = attention.RunSummary("scheduled__x", totals, quarantined=[7])
    assert not summary.needs_attention
    assert summary.lines("fail") == [
        "processing run scheduled__x: 2 file(s), none failed or rejected",
        "files by status: 2 loaded; 1,200 calls loaded (3 flagged), 4 rows quarantined, 0 duplicate calls",
        "loaded with rows quarantined: files 7",
        "see a file (its log, its quarantine, its calls): cdrflow file 7",
    ]
    assert attention.file_link(7) is None
    monkeypatch.setenv(attention.ENV, "loud")
    assert attention.mode() == ("fail", "CDRFLOW_ATTENTION='loud' is neither fail nor warn: treated as fail")
