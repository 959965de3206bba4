"""A real S3-compatible server on loopback for the bucket collector's tests: moto's standalone server.

``s3_server`` starts moto's ``ThreadedMotoServer`` (the same WSGI application as the
``moto_server`` command, speaking the S3 HTTP API) once per test session on 127.0.0.1 and a port
the OS picks, and stops it at the end. The code under test reaches it over HTTP exactly as it
would reach MinIO or AWS: nothing in boto3 or fsspec is patched. When the server cannot start,
the fixture FAILS with the reason: a collector test that silently skips proves nothing.

While the fixture is active, the ``AWS_*`` environment holds dummy credentials, no profile or
config file, and instance metadata is disabled, so that a client that falls back to boto3's
default chain cannot find real credentials nor wait on the EC2 metadata endpoint.

Buckets outlive the test that made them (the server is shared by the session): give each test
its own, :meth:`S3Server.create_bucket` with no name makes a unique one.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import pytest

ACCESS_KEY = "cdrflow-test-access-key"
SECRET_KEY = "cdrflow-test-secret-key"
REGION = "us-east-1"
START_TIMEOUT = 15.0


@dataclass
class S3Server:
    """A running S3 endpoint and small helpers to arrange and inspect buckets with boto3."""

    endpoint_url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def new_client(self):
        """A new boto3 S3 client for this server (path-style addressing, SigV4)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    @cached_property
    def client(self):
        """A shared boto3 S3 client for this server."""
        return self.new_client()

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique ``cdrflow-test-...`` name when none is given); return its name."""
        name = name or f"cdrflow-test-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key in ``bucket`` under ``prefix`` (recursive), sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def airflow_conn_json(self, *, endpoint_url: str | None = None, max_attempts: int | None = None) -> str:
        """The value of an ``AIRFLOW_CONN_<ID>`` variable for this server (or for ``endpoint_url``).

        ``max_attempts`` caps botocore's retries (``config_kwargs.retries``): a test of an
        endpoint that refuses connections then fails at once instead of after seconds of backoff.
        """
        config: dict = {"signature_version": "s3v4", "s3": {"addressing_style": "path"}}
        if max_attempts is not None:
            config["retries"] = {"total_max_attempts": max_attempts, "mode": "standard"}
        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": {
                    "endpoint_url": endpoint_url or self.endpoint_url,
                    "region_name": self.region,
                    "config_kwargs": config,
                },
            }
        )


def start_server(port: int = 0) -> tuple[object, str]:
    """Start a moto S3 server on 127.0.0.1 (a free port when 0); returns (server, endpoint URL)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.fail(f"moto's standalone server is not installed ({exc}); pip install 'moto[server]'", pytrace=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    # ThreadedMotoServer.start() waits without a timeout for its thread to bind the socket, and
    # waits forever when binding raises in that thread: start it from a thread we can time out.
    starter = threading.Thread(target=server.start, name="moto-s3-start", daemon=True)
    starter.start()
    starter.join(START_TIMEOUT)
    try:
        host, port = server.get_host_and_port()
    except AssertionError:
        host = port = None
    if starter.is_alive() or port is None:
        pytest.fail(
            f"moto's S3 server did not start on 127.0.0.1 within {START_TIMEOUT:.0f}s "
            "(see the thread's traceback above)",
            pytrace=False,
        )
    return server, f"http://{host}:{port}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 for the session, with dummy AWS credentials in the env."""
    werkzeug_log = logging.getLogger("werkzeug")  # one INFO line per request otherwise
    old_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    with pytest.MonkeyPatch.context() as env:
        for name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_CONFIG_FILE", "/dev/null")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        server, endpoint = start_server()
        try:
            s3 = S3Server(endpoint_url=endpoint)
            try:
                s3.client.list_buckets()
            except Exception as exc:
                pytest.fail(f"moto's S3 server at {endpoint} does not answer: {exc}", pytrace=False)
            yield s3
        finally:
            server.stop()
            werkzeug_log.setLevel(old_level)
