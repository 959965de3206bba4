"""The upload-bucket collector against a real S3 server (moto's, on loopback) and local folders.

Nothing of boto3, s3fs or fsspec is mocked: the collector reaches the server over HTTP through
Airflow's ObjectStoragePath and an ``AIRFLOW_CONN_<ID>`` connection, and the tests look at the
bucket afterwards with their own boto3 client.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from cdrflow.config.carrier_file import BucketSource
from cdrflow.config.errors import ConfigurationError, RawStoreUnavailable, SourceUnavailable
from cdrflow.dev.generate import asterisk_bytes
from cdrflow.intake.rawstore import RawStore
from cdrflow.sources import bucket
from registry_rows import rows, stored
from servers.s3 import s3_server

pytestmark = pytest.mark.integration

CONN_ID = "cdrflow_test_s3"


@pytest.fixture
def conn_id(s3_server, monkeypatch) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", s3_server.airflow_conn_json())
    return CONN_ID


def test_s3_objects_are_registered_then_moved(engine, store, carrier, s3_server, conn_id):
    b = s3_server.create_bucket()
    a_bytes, b_bytes = asterisk_bytes(3, seed=1), asterisk_bytes(4, seed=2)
    s3_server.put(b, "incoming/a.csv", a_bytes)
    s3_server.put(b, "incoming/B.CSV", b_bytes)  # patterns are case-insensitive
    s3_server.put(b, "incoming/readme.txt", b"not a cdr")  # pattern mismatch
    s3_server.put(b, "incoming/.hidden.csv", b"hidden")
    s3_server.put(b, "incoming/c.csv.part", b"uploading")
    s3_server.put(b, "incoming/d.csv.crdownload", b"uploading")
    s3_server.put(b, "incoming/", b"")  # a console's "folder" marker
    s3_server.put(b, "incoming/sub/e.csv", asterisk_bytes(1, seed=5))  # not directly under the prefix
    s3_server.put(b, "other/f.csv", asterisk_bytes(1, seed=6))  # another prefix
    source = BucketSource(url=f"s3://{b}/incoming/", conn_id=conn_id, patterns=("*.csv",))

    done = bucket.run(engine, store, carrier, source)

    assert [(c.name, c.outcome, c.source, c.source_uri) for c in done] == [
        ("B.CSV", "received", "bucket", f"s3://{b}/incoming/B.CSV"),
        ("a.csv", "received", "bucket", f"s3://{b}/incoming/a.csv"),
    ]
    registered = rows(engine)
    assert [(r["file_name"], r["file_source"], r["source_uri"], r["status"]) for r in registered] == [
        ("B.CSV", "bucket", f"s3://{b}/incoming/B.CSV", "received"),
        ("a.csv", "bucket", f"s3://{b}/incoming/a.csv", "received"),
    ]
    assert stored(store, registered[0]) == b_bytes
    assert stored(store, registered[1]) == a_bytes
    assert s3_server.keys(b) == sorted(
        [
            "incoming/",
            "incoming/.hidden.csv",
            "incoming/c.csv.part",
            "incoming/d.csv.crdownload",
            "incoming/processed/B.CSV",
            "incoming/processed/a.csv",
            "incoming/readme.txt",
            "incoming/sub/e.csv",
            "other/f.csv",
        ]
    )
    assert s3_server.get(b, "incoming/processed/a.csv") == a_bytes

    # A second run finds nothing new and changes nothing.
    assert bucket.collect(engine, store, carrier, source) == []
    assert len(rows(engine)) == 2


def test_a_later_run_sees_objects_added_since(engine, store, carrier, s3_server, conn_id):
    # The first run lists the prefix and moves nothing, so an s3fs listing cache would still hold
    # that listing: the second run must ask the server again.
    b = s3_server.create_bucket()
    s3_server.put(b, "in/readme.txt", b"x")
    source = BucketSource(url=f"s3://{b}/in", conn_id=conn_id, patterns=("*.csv",))
    assert bucket.collect(engine, store, carrier, source) == []

    s3_server.put(b, "in/new.csv", asterisk_bytes(2, seed=7))
    done = bucket.collect(engine, store, carrier, source)

    assert [(c.name, c.outcome) for c in done] == [("new.csv", "received")]
    assert s3_server.keys(b, "in/") == ["in/processed/new.csv", "in/readme.txt"]


def test_same_bytes_under_a_new_name_is_a_duplicate(engine, store, carrier, s3_server, conn_id):
    b = s3_server.create_bucket()
    data = asterisk_bytes(3, seed=11)
    source = BucketSource(url=f"s3://{b}/up/", conn_id=conn_id)
    s3_server.put(b, "up/first.csv", data)
    [first] = bucket.collect(engine, store, carrier, source)

    s3_server.put(b, "up/again.csv", data)
    [again] = bucket.collect(engine, store, carrier, source)

    assert (first.outcome, again.outcome) == ("received", "duplicate")
    assert again.duplicate_of == first.file_id and again.sha1 == first.sha1
    assert [(r["file_name"], r["status"]) for r in rows(engine)] == [
        ("first.csv", "received"),
        ("again.csv", "duplicate"),
    ]
    assert s3_server.keys(b) == ["up/processed/again.csv", "up/processed/first.csv"]


def test_same_name_new_bytes_is_registered_and_replaces_the_processed_copy(engine, store, carrier, s3_server, conn_id):
    b = s3_server.create_bucket()
    old, new = asterisk_bytes(2, seed=21), asterisk_bytes(2, seed=22)
    source = BucketSource(url=f"s3://{b}/up/", conn_id=conn_id, processed_prefix="done")  # no slash
    s3_server.put(b, "up/cdr.csv", old)
    bucket.collect(engine, store, carrier, source)
    s3_server.put(b, "up/cdr.csv", new)

    [done] = bucket.collect(engine, store, carrier, source)

    assert done.outcome == "received"
    both = rows(engine)
    assert [stored(store, r) for r in both] == [old, new]  # both versions kept in the raw store
    assert s3_server.keys(b) == ["up/done/cdr.csv"]
    assert s3_server.get(b, "up/done/cdr.csv") == new


def test_an_empty_prefix_is_not_an_error(engine, store, carrier, s3_server, conn_id):
    b = s3_server.create_bucket()
    assert bucket.collect(engine, store, carrier, BucketSource(url=f"s3://{b}/nothing-yet/", conn_id=conn_id)) == []
    assert bucket.collect(engine, store, carrier, BucketSource(url=f"s3://{b}", conn_id=conn_id)) == []


def test_an_object_that_vanishes_is_skipped(engine, store, carrier, s3_server, conn_id, monkeypatch):
    # Another run took gone.csv between our listing and our read: list it, but it is not there.
    b = s3_server.create_bucket()
    s3_server.put(b, "in/here.csv", asterisk_bytes(2, seed=31))
    real_list = bucket._list
    monkeypatch.setattr(
        bucket, "_list", lambda base: [*real_list(base), {"name": f"{b}/in/gone.csv", "type": "file", "size": 5}]
    )

    done = bucket.collect(engine, store, carrier, BucketSource(url=f"s3://{b}/in/", conn_id=conn_id))

    assert [(c.name, c.outcome) for c in done] == [("gone.csv", "skipped"), ("here.csv", "received")]
    assert done[0].reason.startswith("cannot open: FileNotFoundError")
    assert [r["file_name"] for r in rows(engine)] == ["here.csv"]
    assert s3_server.keys(b) == ["in/processed/here.csv"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_endpoint_is_source_unavailable(engine, store, carrier, s3_server, monkeypatch):
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there any more
    monkeypatch.setenv(
        "AIRFLOW_CONN_CDRFLOW_TEST_S3_DEAD", s3_server.airflow_conn_json(endpoint_url=dead, max_attempts=1)
    )
    source = BucketSource(url="s3://uploads/acme/", conn_id="cdrflow_test_s3_dead")

    with pytest.raises(SourceUnavailable) as caught:
        bucket.collect(engine, store, carrier, source)

    message = str(caught.value)
    assert "\n" not in message
    assert "s3://uploads/acme" in message and "cdrflow_test_s3_dead" in message
    assert "Could not connect" in message and dead in message
    assert s3_server.secret_key not in message
    assert rows(engine) == []


def test_a_missing_bucket_is_source_unavailable(engine, store, carrier, s3_server, conn_id):
    source = BucketSource(url="s3://no-such-bucket-cdrflow/in/", conn_id=conn_id)
    with pytest.raises(SourceUnavailable, match=r"s3://no-such-bucket-cdrflow/in .*cdrflow_test_s3.*no such bucket"):
        bucket.collect(engine, store, carrier, source)
    assert rows(engine) == []


def test_an_undefined_connection_is_refused_before_any_request(engine, store, carrier, s3_server):
    # The amazon provider would fall back to default credentials and real AWS endpoints.
    source = BucketSource(url="s3://uploads/acme/", conn_id="cdrflow_test_no_such_conn")
    with pytest.raises(ConfigurationError, match="cdrflow_test_no_such_conn.*is not defined"):
        bucket.collect(engine, store, carrier, source)


def _local_case(kind: str, tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    if kind == "relative":
        monkeypatch.setenv("CDRFLOW_STATE_DIR", str(tmp_path / "state"))
        return "uploads/acme", tmp_path / "state" / "uploads" / "acme"
    folder = tmp_path / "drop" / "acme"
    return (str(folder) if kind == "absolute" else folder.as_uri()), folder


@pytest.mark.parametrize("kind", ["relative", "absolute", "file-url"])
def test_a_local_directory_behaves_the_same(engine, store, carrier, tmp_path, monkeypatch, kind):
    url, folder = _local_case(kind, tmp_path, monkeypatch)
    source = BucketSource(url=url, patterns=("*.csv",))
    assert bucket.collect(engine, store, carrier, source) == []  # creates the directory
    assert folder.is_dir()

    data = asterisk_bytes(3, seed=41)
    (folder / "one.csv").write_bytes(data)
    (folder / "two.csv").write_bytes(asterisk_bytes(3, seed=42))
    (folder / "dup.csv").write_bytes(data)
    (folder / "notes.txt").write_text("not a cdr")
    (folder / "three.csv.part").write_bytes(b"uploading")
    (folder / ".four.csv").write_bytes(b"hidden")
    (folder / "sub").mkdir()
    (folder / "sub" / "five.csv").write_bytes(b"nested")

    done = bucket.collect(engine, store, carrier, source)

    assert [(c.name, c.outcome) for c in done] == [
        ("dup.csv", "received"),
        ("one.csv", "duplicate"),
        ("two.csv", "received"),
    ]
    assert done[0].source_uri == (folder / "dup.csv").as_uri()
    assert [(r["file_source"], r["source_uri"]) for r in rows(engine)] == [
        ("bucket", (folder / name).as_uri()) for name in ("dup.csv", "one.csv", "two.csv")
    ]
    assert stored(store, rows(engine)[0]) == data
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        ".four.csv",
        "notes.txt",
        "processed/dup.csv",
        "processed/one.csv",
        "processed/two.csv",
        "sub/five.csv",
        "three.csv.part",
    ]

    assert bucket.collect(engine, store, carrier, source) == []
    assert len(rows(engine)) == 3


# --- the raw store fails: the collector stops (its task fails), nothing is registered or moved ---


def test_an_unwritable_raw_store_stops_the_collector_and_blames_the_store(engine, carrier, tmp_path):
    in_the_way = tmp_path / "disk"
    in_the_way.write_bytes(b"a regular file where the store's directory should be")  # works as root too
    broken = RawStore((in_the_way / "raw").as_uri())
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "ok.csv").write_bytes(asterisk_bytes(2, seed=51))

    with pytest.raises(RawStoreUnavailable) as caught:
        bucket.collect(engine, broken, carrier, BucketSource(url=str(folder)))

    message = str(caught.value)
    assert message.startswith(f"raw store {broken.base_url} is unavailable: ")
    assert "Not a directory" in message and "\n" not in message
    assert "ok.csv" not in message  # the input is not to blame
    assert rows(engine) == []
    assert sorted(p.name for p in folder.iterdir()) == ["ok.csv", "processed"]  # left for the next run


def _refused_by_store(engine, carrier, store: RawStore, tmp_path, seed: int) -> tuple[str, Path]:
    """Collect a drop folder of one file into ``store``, which must refuse it: the one-line
    message, and the folder (whose file must still be there, nothing registered)."""
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "ok.csv").write_bytes(asterisk_bytes(2, seed=seed))
    with pytest.raises(RawStoreUnavailable) as caught:
        bucket.collect(engine, store, carrier, BucketSource(url=str(folder)))
    assert rows(engine) == [] and (folder / "ok.csv").exists()
    message = str(caught.value)
    assert "\n" not in message
    return message, folder


def _s3_store(s3_server, monkeypatch, bucket_name: str, **conn) -> RawStore:
    """A raw store ``s3://<conn>@bucket/raw`` on the moto server, the connection's fields overridden."""
    spec = json.loads(s3_server.airflow_conn_json(max_attempts=1))
    spec.update(conn)
    monkeypatch.setenv("AIRFLOW_CONN_CDRFLOW_TEST_RAW_S3", json.dumps(spec))
    return RawStore(f"s3://cdrflow_test_raw_s3@{bucket_name}/raw")


def test_an_s3_raw_store_without_credentials_is_one_line_naming_it(engine, carrier, tmp_path, s3_server, monkeypatch):
    # No connection id: boto3's default chain, which finds nothing (the fixture disabled the
    # config files and instance metadata); the endpoint comes from the environment.
    raw_bucket = s3_server.create_bucket()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    message, _ = _refused_by_store(engine, carrier, RawStore(f"s3://{raw_bucket}/raw"), tmp_path, seed=52)
    assert message.startswith(f"raw store s3://{raw_bucket}/raw is unavailable: ")
    assert "NoCredentialsError" in message
    assert s3_server.keys(raw_bucket) == []


def test_an_s3_raw_store_refusing_its_connection_is_raw_store_unavailable(
    engine, carrier, tmp_path, s3_server, monkeypatch
):
    # A connection without a key: the provider goes anonymous, and the server refuses.
    raw_bucket = s3_server.create_bucket()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    store = _s3_store(s3_server, monkeypatch, raw_bucket, login=None, password=None)
    message, _ = _refused_by_store(engine, carrier, store, tmp_path, seed=54)
    assert message.startswith(f"raw store s3://cdrflow_test_raw_s3@{raw_bucket}/raw is unavailable: ")


def test_an_s3_raw_store_whose_bucket_is_missing_is_raw_store_unavailable(
    engine, carrier, tmp_path, s3_server, monkeypatch
):
    store = _s3_store(s3_server, monkeypatch, "no-such-raw-bucket-cdrflow")
    message, _ = _refused_by_store(engine, carrier, store, tmp_path, seed=53)
    assert re.match(r"^raw store s3://\S+no-such-raw-bucket-cdrflow/raw is unavailable", message)
