"""Every DAG file imports cleanly and carries what operators rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports(dagbag):
    assert dagbag.import_errors == {}
    files = {Path(d.fileloc).name for d in dagbag.dags.values()}
    assert files == {p.name for p in DAGS.glob("*.py")}  # one DAG per file, none lost


@pytest.mark.parametrize("attribute", ["tags", "owner", "retries"])
def test_every_dag_has_tags_owner_and_retries(dagbag, attribute):
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        if attribute == "tags":
            assert dag.tags, f"{dag_id} has no tags"
        for t in dag.tasks:
            if attribute == "owner":
                assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
            if attribute == "retries":
                assert t.retries >= 1, f"{dag_id}.{t.task_id} does not retry"
