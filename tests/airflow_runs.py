"""Running cdrflow's DAGs in the tests as Airflow runs them: ``dag.test()`` on a migrated
metadata database (SQLite in the session's AIRFLOW_HOME), tasks in-process.

``pipeline`` points the tasks at the test warehouse, a private raw store and a carrier file
written by the test, then runs a collector DAG and the processing DAG like the scheduler
would (the processing run is what the collector's asset event starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database, migrated once per session (dag.test() needs it)."""
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert out.returncode == 0, f"airflow db migrate failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag


@dataclass
class RunOutcome:
    state: str
    tasks: dict[str, list[str]]  # task id -> states of its (mapped) instances
    dag_run: object

    def xcom(self, task_id: str):
        return [
            ti.xcom_pull(task_ids=task_id, map_indexes=ti.map_index)
            for ti in self.dag_run.get_task_instances()
            if ti.task_id == task_id
        ]


class Pipeline:
    def __init__(self, dagbag, tmp_path: Path, monkeypatch, warehouse_url: str):
        self.dagbag, self.tmp = dagbag, tmp_path
        self.carriers_file = tmp_path / "carriers.yaml"
        self.raw_store = (tmp_path / "raw").as_uri()
        monkeypatch.setenv("CDRFLOW_DATABASE_URL", warehouse_url)
        monkeypatch.setenv("CDRFLOW_RAW_STORE", self.raw_store)
        monkeypatch.setenv("CDRFLOW_CARRIERS_FILE", str(self.carriers_file))

    def configure(self, carriers: list[dict]) -> None:
        self.carriers_file.write_text(yaml.safe_dump({"carriers": carriers}))

    def run(self, dag_id: str, conf: dict | None = None) -> RunOutcome:
        dag = self.dagbag.get_dag(dag_id)
        assert dag is not None, f"no DAG {dag_id}"
        for t in dag.tasks:  # dag.test() waits out retry delays: a failure here is final
            t.retries = 0
        dag_run = dag.test(run_conf=conf or None)
        tasks: dict[str, list[str]] = {}
        for ti in dag_run.get_task_instances():
            tasks.setdefault(ti.task_id, []).append(str(ti.state))
        return RunOutcome(str(dag_run.state), tasks, dag_run)

    def collect_and_process(self, kind: str) -> tuple[RunOutcome, RunOutcome]:
        collected = self.run(f"cdrflow_collect_{kind}")
        return collected, self.process()

    def process(self, **params) -> RunOutcome:
        # every param spelled out: dag.test() on a DAG object reused by the session would
        # otherwise see the previous run's values
        empty = {"file_ids": None, "accept_file_ids": None, "carrier": None, "day": None}
        return self.run("cdrflow_process", {**empty, **params})


@pytest.fixture
def pipeline(dagbag, tmp_path, monkeypatch, warehouse_url, engine) -> Pipeline:
    # `engine` (tests/conftest.py) empties the warehouse after the test
    return Pipeline(dagbag, tmp_path, monkeypatch, warehouse_url)
