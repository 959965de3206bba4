"""Registering a folder on the worker (sources/folder.py, the cdrflow_register_folder DAG):
only under the configured roots, and announced like the collectors' files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select, text
from tests.airflow_runs import airflow_db, dagbag, pipeline

from cdrflow.dev import generate
from cdrflow.sources.folder import FolderRefused, register_folder, register_roots


def _files(engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT file_name, status FROM cdr_files ORDER BY id"))]


@pytest.fixture
def uploads(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "uploads"
    (root / "acme").mkdir(parents=True)
    monkeypatch.setenv("CDRFLOW_REGISTER_ROOTS", f"{root}{os.pathsep}{tmp_path / 'other-root'}")
    return root


def test_the_default_root_is_the_state_uploads_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("CDRFLOW_REGISTER_ROOTS", raising=False)
    monkeypatch.setenv("CDRFLOW_STATE_DIR", str(tmp_path / "state"))
    assert register_roots() == [(tmp_path / "state" / "uploads").resolve()]


def test_a_folder_under_a_root_is_registered_by_absolute_or_relative_path(engine, store, carrier, uploads):
    (uploads / "acme" / "a.csv").write_bytes(generate.asterisk_bytes(3, seed=1))
    (uploads / "acme" / "b.csv").write_bytes(generate.asterisk_bytes(3, seed=2))

    first = register_folder(engine, store, uploads / "acme", carrier=carrier, pattern="a.csv")
    second = register_folder(engine, store, "acme", carrier=carrier)  # relative: under the first root

    assert [(r.file_name, str(r.status)) for r in first + second] == [
        ("a.csv", "received"),
        ("a.csv", "duplicate"),
        ("b.csv", "received"),
    ]


@pytest.mark.parametrize("folder", ["/etc", "../secrets", "acme/../../secrets"])
def test_a_folder_outside_every_root_is_refused_with_one_line(engine, store, carrier, uploads, folder):
    secrets = uploads.parent / "secrets"
    secrets.mkdir()
    (secrets / "key.csv").write_bytes(b"not for the raw store")

    with pytest.raises(FolderRefused) as caught:
        register_folder(engine, store, folder, carrier=carrier)

    message = str(caught.value)
    assert message.startswith(f"folder {folder!r} is outside the folders files may be registered from (")
    assert str(uploads) in message and "\n" not in message
    assert _files(engine) == []


def test_a_link_or_pattern_leading_out_of_the_root_registers_nothing(engine, store, carrier, uploads):
    secrets = uploads.parent / "secrets"
    secrets.mkdir()
    (secrets / "key.csv").write_bytes(b"not for the raw store")
    (uploads / "acme" / "key.csv").symlink_to(secrets / "key.csv")
    (uploads / "linked").symlink_to(secrets, target_is_directory=True)

    assert register_folder(engine, store, uploads / "acme", carrier=carrier) == []
    assert register_folder(engine, store, uploads / "acme", carrier=carrier, pattern="../../secrets/*") == []
    with pytest.raises(FolderRefused, match="is outside"):
        register_folder(engine, store, uploads / "linked", carrier=carrier)
    assert _files(engine) == []


def test_a_missing_folder_is_refused(engine, store, carrier, uploads):
    with pytest.raises(FolderRefused, match=r"^folder 'nope' is not a directory"):
        register_folder(engine, store, "nope", carrier=carrier)


# --- the DAG ---


def _asset_events(run) -> list[str]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return list(
            session.scalars(
                select(AssetModel.name)
                .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
                .where(AssetEvent.source_run_id == run.dag_run.run_id)
            )
        )


def _conf(folder, **more) -> dict:
    return {"folder": str(folder), "carrier": "acme", "pattern": "*", "file_source": "upload", **more}


def test_the_dag_registers_and_announces_then_a_second_run_announces_nothing(pipeline, engine, uploads):
    pipeline.configure([{"code": "acme", "file_type": "asterisk_csv"}])
    pipeline.run("cdrflow_collect_bucket")  # loads the carrier file into the warehouse
    (uploads / "acme" / "a.csv").write_bytes(generate.asterisk_bytes(20, seed=3))

    run = pipeline.run("cdrflow_register_folder", _conf(uploads / "acme"))

    assert run.state == "success", run.tasks
    assert run.tasks == {"register": ["success"], "announce": ["success"]}
    assert _asset_events(run) == ["cdrflow_files_received"]  # processing starts at once
    assert _files(engine) == [("a.csv", "received")]

    again = pipeline.run("cdrflow_register_folder", _conf(uploads / "acme"))
    assert again.tasks == {"register": ["success"], "announce": ["skipped"]}
    assert _asset_events(again) == []
    assert _files(engine) == [("a.csv", "received"), ("a.csv", "duplicate")]


def test_the_dag_refuses_a_folder_outside_the_roots(pipeline, engine, uploads, tmp_path):
    pipeline.configure([{"code": "acme", "file_type": "asterisk_csv"}])
    pipeline.run("cdrflow_collect_bucket")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.csv").write_bytes(generate.asterisk_bytes(5, seed=4))

    run = pipeline.run("cdrflow_register_folder", _conf(outside))

    assert run.state == "failed"
    assert run.tasks["register"] == ["failed"]
    assert _asset_events(run) == []
    assert _files(engine) == []
