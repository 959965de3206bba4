"""Fresh data: the watcher that starts the bucket collector when a file is dropped.

The trigger runs here as the triggerer runs it (its ``run()`` async generator in an event loop),
on a real folder and a real S3 server (moto's, on loopback); the DAG tests check that the bucket
collector is scheduled on the watched asset or its one-minute fallback, and that the processing
DAG it wakes is scheduled on the asset the collector updates.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from airflow.sdk.module_loading import import_string
from tests.airflow_runs import airflow_db, dagbag, pipeline  # fixtures

from cdrflow.dev import generate
from cdrflow.orchestration import source_watch
from cdrflow.orchestration.assets import FILES_RECEIVED
from cdrflow.orchestration.collector_dag import FILES_RECEIVED_BY_COLLECTORS
from cdrflow.orchestration.source_watch import NewFilesTrigger, list_folder
from servers.s3 import s3_server  # a fixture

DAGS = Path(__file__).resolve().parents[1] / "dags"


def _carriers(path: Path, *sources: dict) -> str:
    carrier = {"code": "acme", "name": "ACME", "file_type": "asterisk_csv", "sources": list(sources)}
    path.write_text(yaml.safe_dump({"carriers": [carrier]}))
    return str(path)


class Watch:
    """A trigger running in the background of the test's event loop, its events collected."""

    def __init__(self, trigger: NewFilesTrigger):
        self.events: list[list[str]] = []
        self.trigger = trigger

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.events.append([f.rsplit(" ", 1)[-1] for f in event.payload["files"]])

    async def __aenter__(self) -> Watch:
        self.task = asyncio.create_task(self._consume())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()

    async def settle(self, polls: int = 4) -> list[list[str]]:
        await asyncio.sleep(self.trigger.poll_seconds * polls + 0.1)
        return self.events


def test_fires_once_per_new_file_never_for_uploads_in_progress(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    conf = _carriers(tmp_path / "carriers.yaml", {"kind": "bucket", "url": str(drop), "patterns": ["*.csv"]})

    async def scenario() -> None:
        async with Watch(NewFilesTrigger(poll_seconds=0.05, settle_seconds=0, carriers_file=conf)) as watch:
            assert await watch.settle() == []  # an empty folder: nothing
            (drop / "a.csv").write_text("x")
            (drop / "b.csv.part").write_text("uploading")
            (drop / ".hidden.csv").write_text("hidden")
            (drop / "notes.txt").write_text("not a pattern")
            (drop / "processed").mkdir()
            (drop / "processed" / "old.csv").write_text("collected before")
            assert await watch.settle() == [["a.csv"]]  # once, however long it waits
            (drop / "b.csv.part").rename(drop / "b.csv")  # the upload finished
            assert await watch.settle() == [["a.csv"], ["b.csv"]]
            (drop / "a.csv").rename(drop / "processed" / "a.csv")  # the collector took it
            assert await watch.settle() == [["a.csv"], ["b.csv"]]
            (drop / "a.csv").write_text("the next day's a.csv")  # dropped again under its name
            assert await watch.settle() == [["a.csv"], ["b.csv"], ["a.csv"]]

        # A restarted triggerer announces once what still waits (not collected yet), then nothing.
        async with Watch(NewFilesTrigger(poll_seconds=0.05, settle_seconds=0, carriers_file=conf)) as watch:
            assert await watch.settle() == [["a.csv", "b.csv"]]

    asyncio.run(scenario())


def test_a_file_still_being_written_waits_for_the_settle_time(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    assert list_folder(tmp_path, ("*.csv",), settle=60) == {}
    old = time.time() - 61
    os.utime(tmp_path / "a.csv", (old, old))
    assert list(list_folder(tmp_path, ("*.csv",), settle=60)) == ["a.csv"]
    assert list_folder(tmp_path / "missing", ("*",), settle=0) == {}  # the collector creates it


def test_an_s3_prefix_is_listed_with_the_collectors_rules(tmp_path, s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WATCH_S3", s3_server.airflow_conn_json())
    bucket = s3_server.create_bucket()
    for key in ("in/a.csv", "in/b.csv.part", "in/.h.csv", "in/processed/c.csv", "in/sub/d.csv", "other/e.csv"):
        s3_server.put(bucket, key, b"x")
    conf = _carriers(
        tmp_path / "carriers.yaml",
        {"kind": "bucket", "url": f"s3://{bucket}/in", "conn_id": "watch_s3", "patterns": ["*.csv"]},
        {"kind": "bucket", "url": "s3://no-such-bucket-here/in/", "conn_id": "watch_s3"},
    )
    trigger = NewFilesTrigger(poll_seconds=0.05, settle_seconds=0, carriers_file=conf)
    assert list(trigger.listing()) == [f"acme s3://{bucket}/in a.csv"]  # the missing bucket is logged
    assert "no-such-bucket-here" in " ".join(trigger._problems)


def _dags(*names: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return [bag.dags[n] for n in names]


def test_the_bucket_collector_runs_on_the_watcher_or_every_minute_and_wakes_processing():
    collect, sftp, process = _dags("cdrflow_collect_bucket", "cdrflow_collect_sftp", "cdrflow_process")
    [asset] = collect.timetable.asset_condition.objects
    assert asset.name == "cdrflow_bucket_files"
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, NewFilesTrigger) and watcher.trigger.poll_seconds == 5.0
    assert collect.timetable.timetable.delta.total_seconds() == 60  # the fallback poll
    # plan -> collect, and collect itself updates cdrflow_files_received (through an alias: only
    # when it registered something new); no announce/check task processes on the way
    assert [t.task_id for t in collect.tasks] == ["plan", "collect"]
    assert collect.get_task("collect").outlets == [FILES_RECEIVED_BY_COLLECTORS]
    assert FILES_RECEIVED in process.timetable.asset_condition.objects  # processing starts at once
    assert [t.task_id for t in process.tasks] == ["claim", "process", "report"]  # housekeeping is in claim
    assert type(sftp.timetable).__name__ == "DeltaTriggerTimetable"  # SFTP and FTP: polled only


def test_the_triggerer_rebuilds_the_trigger_from_what_the_dag_processor_stores():
    from airflow.serialization.serialized_objects import DagSerialization

    [collect] = _dags("cdrflow_collect_bucket")
    stored = json.dumps(DagSerialization.to_dict(collect))
    assert "cdrflow.orchestration.source_watch.NewFilesTrigger" in stored
    classpath, kwargs = NewFilesTrigger(poll_seconds=5, settle_seconds=1).serialize()
    rebuilt = import_string(classpath)(**kwargs)
    assert (rebuilt.poll_seconds, rebuilt.settle_seconds, rebuilt.carriers_file) == (5.0, 1.0, None)


def test_the_watcher_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("CDRFLOW_WATCH_SECONDS", "0")
    from cdrflow.orchestration.collector_dag import schedule

    assert type(schedule("bucket")).__name__ == "DeltaTriggerTimetable"
    assert source_watch.bucket_files_asset().watchers == []


def test_a_collect_that_registered_new_files_queues_a_processing_run(pipeline, engine, tmp_path):
    """The scheduler's side of the collector's asset event: ``cdrflow_process`` is queued when
    files were registered, and not when the folder held nothing new."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select, update

    drop = tmp_path / "drop"
    drop.mkdir()
    pipeline.configure(
        [{"code": "acme", "file_type": "asterisk_csv", "sources": [{"kind": "bucket", "url": str(drop)}]}]
    )
    assert pipeline.process().state == "success"  # cdrflow_process known to the metadata database

    def queued() -> list[str]:
        with create_session() as session:
            return list(
                session.scalars(
                    select(AssetModel.name)
                    .join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
                    .where(AssetDagRunQueue.target_dag_id == "cdrflow_process")
                )
            )

    def processing(paused: bool) -> None:
        with create_session() as session:
            session.execute(update(DagModel).where(DagModel.dag_id == "cdrflow_process").values(is_paused=paused))
            session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == "cdrflow_process"))

    processing(paused=False)  # as on a deployment: a paused DAG is never queued
    try:
        assert pipeline.run("cdrflow_collect_bucket").state == "success"
        assert queued() == []  # an empty folder: processing not woken
        (drop / "a.csv").write_bytes(generate.asterisk_bytes(20, seed=5))
        assert pipeline.run("cdrflow_collect_bucket").state == "success"
        assert queued() == [FILES_RECEIVED.name]  # the scheduler starts cdrflow_process from this
    finally:
        processing(paused=True)
