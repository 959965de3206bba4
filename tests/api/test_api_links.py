"""Signed download links: the bytes exactly, Range, and every way a link is refused.

The link mechanism is tested here in-process on a kind of its own (``test``); the routes that
hand out real links (report requests, invoices) test their links over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cdrflow.api import links
from cdrflow.api.app import create_app
from servers.s3 import s3_server

NOW = datetime.now(UTC)
KEPT: dict[str, links.Download] = {}


@pytest.fixture
def client(engine, tmp_path: Path):
    links.register("test", lambda conn, ident: KEPT.get(ident))
    yield TestClient(create_app(engine))
    KEPT.clear()


def _file(tmp_path: Path, content: bytes) -> links.Download:
    path = tmp_path / "report.csv"
    path.write_bytes(content)
    return links.Download(uri=path.as_uri(), filename="report.csv", size=len(content))


def test_link_downloads_the_exact_bytes_with_length_and_name(client, tmp_path):
    content = b"a,b\n" + b"1,2\n" * 10000
    KEPT["r1"] = _file(tmp_path, content)
    response = client.get("/downloads/" + links.sign("test", "r1", NOW + timedelta(days=30)))
    assert response.status_code == 200 and response.content == content
    assert response.headers["content-length"] == str(len(content))
    assert 'filename="report.csv"' in response.headers["content-disposition"]


def test_range_requests_answer_206_with_the_slice(client, tmp_path):
    content = bytes(range(256)) * 10
    KEPT["r1"] = _file(tmp_path, content)
    url = "/downloads/" + links.sign("test", "r1", NOW + timedelta(days=1))
    response = client.get(url, headers={"Range": "bytes=100-199"})
    assert response.status_code == 206 and response.content == content[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(content)}"
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == content[-10:]


def test_tampered_expired_and_deleted_links_are_refused(client, tmp_path):
    KEPT["r1"] = _file(tmp_path, b"x\n")
    good = links.sign("test", "r1", NOW + timedelta(days=1))
    payload, _, signature = good.partition(".")
    forged = links.sign("test", "r2", NOW + timedelta(days=1), secret="someone else's secret")
    for token in (good[:-2] + ("AA" if not good.endswith("AA") else "BB"), forged, "garbage"):
        response = client.get("/downloads/" + token)
        assert response.status_code == 403, token
    expired = links.sign("test", "r1", NOW - timedelta(seconds=1))
    assert client.get("/downloads/" + expired).status_code == 410
    assert client.get("/downloads/" + good).status_code == 200
    del KEPT["r1"]  # the request was deleted: the same link dies at once
    assert client.get("/downloads/" + good).status_code == 404


def test_an_artefact_expired_in_the_warehouse_answers_410(client, tmp_path):
    item = _file(tmp_path, b"x\n")
    KEPT["r1"] = links.Download(item.uri, item.filename, item.size, expires_at=NOW - timedelta(minutes=1))
    assert client.get("/downloads/" + links.sign("test", "r1", NOW + timedelta(days=1))).status_code == 410


@pytest.mark.integration
def test_remote_store_streams_ranges(client, s3_server, monkeypatch):
    """An S3 artefact (the moto server on loopback) comes through the API, whole or in part."""
    monkeypatch.setenv("AIRFLOW_CONN_LINKS_S3", s3_server.airflow_conn_json())
    content = b"0123456789" * 100000
    bucket = s3_server.create_bucket()
    s3_server.put(bucket, "reports/report.csv", content)
    KEPT["r1"] = links.Download(uri=f"s3://links_s3@{bucket}/reports/report.csv", filename="report.csv")
    url = "/downloads/" + links.sign("test", "r1", NOW + timedelta(days=1))
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == content
    assert whole.headers["content-length"] == str(len(content))
    part = client.get(url, headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == content[5:15]
    assert client.get(url, headers={"Range": f"bytes={len(content)}-"}).status_code == 416
