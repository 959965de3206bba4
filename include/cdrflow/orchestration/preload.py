"""What an Airflow process that forks task processes does once, so that no task pays it again.

Airflow 3 runs a task in a process forked from the one that picked it up (the task supervisor
forks, without exec, on Linux): the scheduler's LocalExecutor workers, themselves forked from the
scheduler, and the pool processes of ``airflow celery worker``. A forked process starts with
every module its parent had imported. Great Expectations takes about 2 s to import (scipy, all its
expectations and metrics) and its first run another 0.2 s of lazy set-up; a processing task that
imported it itself waited that long before its first chunk was written (``bench/load_asterisk.py``:
the writer idle 2.5 s before its first batch, 1.5x the floor instead of 1.06x). So those parent
processes import it, build every format's suite and validate one record before they fork,
through Airflow's local settings hook (``plugins/airflow_local_settings.py``), which every Airflow
process imports while it starts. The other Airflow processes (API server, DAG processor,
triggerer, CLI commands) are left alone: none of them validates.

:func:`preload` runs in the main thread, before any fork, so no lock of another thread can be
copied held into a child.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

# One record of an Asterisk Master.csv (21 columns): parsed, its numbers read and validated once,
# so that the parser's, the numbering plans' and Great Expectations' lazy set-up is done too.
_SAMPLE = (
    b'"","3125550100","18005550100","default","""Alice"" <3125550100>","SIP/100-00000001",'
    b'"SIP/trunk-00000002","Dial","SIP/trunk/18005550100,30","2026-01-01 10:00:00",'
    b'"2026-01-01 10:00:02","2026-01-01 10:01:02",62,60,"ANSWERED","DOCUMENTATION",'
    b'"1767261600.1","","","1767261600.1",1\n'
)

SKIP = "CDRFLOW_NO_PRELOAD"  # set (to anything but "" or "0") to start without it


def forks_tasks(argv: Sequence[str], executor: str) -> bool:
    """Whether the Airflow command ``argv`` (without the program) runs tasks in forked
    processes: a Celery worker, or a scheduler whose executor is the LocalExecutor."""
    words = [a for a in argv if not a.startswith("-")]
    if words[:2] == ["celery", "worker"]:
        return True
    return words[:1] == ["scheduler"] and "LocalExecutor" in executor


def preload() -> float:
    """Import Great Expectations, build every format's validation suite and validate one
    record. Returns the seconds it took. Never raises: a task that finds nothing preloaded
    imports what it needs itself, as before."""
    started = time.perf_counter()
    try:
        from cdrflow.formats.base import ParseOptions
        from cdrflow.loading.chunks import validated_chunks
        from cdrflow.validation import suites

        for file_type in suites.file_types():
            suites.prepare(file_type)
        for _ in validated_chunks(io.BytesIO(_SAMPLE), "asterisk_csv", ParseOptions()):
            pass
    except Exception:  # a preload must never stop Airflow from starting
        log.warning("cdrflow: could not preload Great Expectations; each task imports it", exc_info=True)
    return time.perf_counter() - started


_preloaded = False  # Airflow runs the hook's file twice: as its local settings, then as a plugin file


def preload_if_forking(argv: Sequence[str], executor: str) -> None:
    """:func:`preload`, once per process, when ``argv`` is a command that forks task processes,
    unless ``CDRFLOW_NO_PRELOAD`` is set."""
    global _preloaded
    if _preloaded or os.environ.get(SKIP, "") not in ("", "0") or not forks_tasks(argv, executor):
        return
    _preloaded = True
    seconds = preload()
    log.info("cdrflow: Great Expectations and the validation suites preloaded in %.1f s", seconds)
