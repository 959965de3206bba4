"""The Airflow processes that fork task processes import Great Expectations first
(``plugins/airflow_local_settings.py`` -> ``cdrflow.orchestration.preload``), the others do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdrflow.orchestration.preload import forks_tasks

REPO = Path(__file__).resolve().parents[1]

# Airflow starting as ``airflow <command>``: its settings import the local settings hook. Then,
# as the task supervisor does, the process forks; the child says what it found already imported
# and validates a file of its own (its first chunk must not need an import).
STARTING = """
import json, os, sys
sys.argv = ["airflow", *sys.argv[1:]]
import airflow.settings  # Airflow's start: settings, then airflow_local_settings
found = {"parent": "great_expectations" in sys.modules}
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    before = "great_expectations" in sys.modules
    from cdrflow.formats.base import ParseOptions
    from cdrflow.loading.chunks import validated_chunks
    chunks = list(validated_chunks(open(os.environ["SAMPLE_FILE"], "rb"), "asterisk_csv", ParseOptions()))
    calls = sum(len(c.calls) for c in chunks)
    quality = sorted(str(q) for c in chunks for q in c.calls["quality"] if isinstance(q, str) and q)
    os.write(write, json.dumps({"child": before, "calls": calls, "flagged": quality}).encode())
    os._exit(0)
os.close(write)
os.waitpid(pid, 0)
found.update(json.loads(os.read(read, 65536)))
print(json.dumps(found))
"""


def airflow_environ(tmp_path: Path, **env: str) -> dict[str, str]:
    """This process's environment for an Airflow of its own in ``tmp_path``, the preload not
    switched off, with ``env`` on top."""
    base = {k: v for k, v in os.environ.items() if k != "CDRFLOW_NO_PRELOAD"}
    return {**base, "AIRFLOW_HOME": str(tmp_path / "airflow"), **env}


def start_airflow(tmp_path: Path, *argv: str, executor: str = "LocalExecutor", **env: str) -> dict:
    sample = tmp_path / "Master.csv"
    sample.write_text(
        '"","3125550100","18005550100","default","""Alice"" <3125550100>","SIP/100-00000001",'
        '"SIP/trunk-00000002","Dial","SIP/trunk/18005550100,30","2026-01-01 10:00:00",'
        '"2026-01-01 10:00:02","2026-01-01 10:01:02",62,60,"ANSWERED","DOCUMENTATION",'
        '"1767261600.1","","","1767261600.1",1\n'
        '"","3125550101","not a number!","default","","SIP/101-00000003","","Dial","",'
        '"2026-01-01 10:05:00","","2026-01-01 10:05:09",9,0,"NO ANSWER","DOCUMENTATION",'
        '"1767261900.2","","","1767261900.2",2\n'
    )
    environ = airflow_environ(
        tmp_path,
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__EXECUTOR=executor,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        SAMPLE_FILE=str(sample),
        **env,
    )
    out = subprocess.run(
        [sys.executable, "-c", STARTING, *argv], capture_output=True, text=True, env=environ, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("argv", "executor", "expected"),
    [
        (["scheduler"], "LocalExecutor", True),
        (["scheduler", "--num-runs", "5"], "airflow.executors.local_executor.LocalExecutor", True),
        (["scheduler"], "CeleryExecutor", False),  # its tasks run on the Celery workers
        (["celery", "worker", "--queues", "default"], "CeleryExecutor", True),
        (["celery", "flower"], "CeleryExecutor", False),
        (["api-server"], "LocalExecutor", False),
        (["dag-processor"], "LocalExecutor", False),
        (["triggerer"], "LocalExecutor", False),
        (["tasks", "test", "cdrflow_process", "load"], "LocalExecutor", False),
        ([], "LocalExecutor", False),
    ],
)
def test_which_airflow_commands_preload(argv, executor, expected):
    assert forks_tasks(argv, executor) is expected


def test_a_scheduler_preloads_and_its_forked_task_finds_great_expectations_imported(tmp_path):
    found = start_airflow(tmp_path, "scheduler")
    assert found["parent"] is True and found["child"] is True
    # the forked child validates with what it inherited: two calls, the second flagged for its callee
    assert found["calls"] == 2 and len(found["flagged"]) == 1, found
    assert "expect_column_values_to_match_regex(callee_number)" in found["flagged"][0]


def test_other_airflow_processes_and_the_switch_leave_it_out(tmp_path):
    assert start_airflow(tmp_path, "api-server")["parent"] is False
    off = start_airflow(tmp_path, "scheduler", CDRFLOW_NO_PRELOAD="1")
    assert off["parent"] is False and off["child"] is False
    # without the preload the task imports Great Expectations itself and validates the same
    assert (off["calls"], off["flagged"]) == (2, start_airflow(tmp_path, "scheduler")["flagged"])


# Great Expectations imported without scipy.stats and altair (cdrflow.validation.gx_import):
# the two expectations that use them still work, and a later import of either is the real one.
DEFERRED = """
import json, math, sys
from cdrflow.validation.gx_import import DeferredModule, import_great_expectations
import_great_expectations()
kl = sys.modules["great_expectations.expectations.core.expect_column_kl_divergence_to_be_less_than"]
found = {"deferred_at_import": [n for n in ("scipy.stats", "altair") if n in sys.modules],
         "placeholder": isinstance(kl.stats, DeferredModule)}
found["entropy"] = kl.stats.entropy([0.5, 0.5])  # loads scipy.stats for real
import scipy.stats, altair
found["real"] = [type(m).__name__ for m in (scipy.stats, altair)]
found["same"] = scipy.stats.entropy is kl.stats.entropy and hasattr(kl.alt, "Chart")
print(json.dumps(found))
"""


def test_great_expectations_imports_without_scipy_stats_and_altair_until_used():
    out = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["deferred_at_import"] == [] and found["placeholder"] is True
    assert abs(found["entropy"] - 0.6931471805599453) < 1e-12
    assert found["real"] == ["module", "module"] and found["same"] is True


def test_airflow_starts_without_the_preload_where_cdrflow_cannot_be_imported(tmp_path):
    # Airflow refuses to start when its local settings fail to import: the hook must not fail
    hidden = tmp_path / "hide"
    (hidden / "cdrflow").mkdir(parents=True)
    (hidden / "cdrflow" / "__init__.py").write_text("raise ImportError('cdrflow is not installed here')\n")
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(hidden)!r}, {str(REPO / 'plugins')!r}]\n"
        "sys.argv = ['airflow', 'scheduler']\n"
        "import airflow.settings\n"  # Airflow's start: settings, then airflow_local_settings
        "import airflow_local_settings\n"
        "print(json.dumps({'gx': 'great_expectations' in sys.modules}))\n"
    )
    environ = airflow_environ(tmp_path, AIRFLOW__CORE__EXECUTOR="LocalExecutor")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"gx": False}
    assert "no preload of Great Expectations (cdrflow is not installed here)" in out.stdout + out.stderr
