"""docker-compose.yaml is a valid Compose file, and the process cluster (``make cluster``) runs what
it describes: the same services, commands and environment, differing only where one machine
forces it (addresses, paths, ports). Plus what a Celery deployment refuses: storage and a
warehouse that only one machine would see.

The Compose specification's JSON schema is pinned in tests/data/compose-spec.json: the file
``schema/compose-spec.json`` of github.com/compose-spec/compose-spec at commit
170098ba07d9f53c383a41bfd4c5166b0a4529a6 (2026-06-23).
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from cdrflow.config.carrier_file import BucketSource
from cdrflow.config.errors import ConfigurationError
from cdrflow.intake.rawstore import RawStore
from cdrflow.orchestration import defaults
from cdrflow.sources import bucket
from cdrflow.warehouse import db

REPO = Path(__file__).resolve().parents[1]
SERVICE_HOSTS = ("postgres", "warehouse", "redis", "objects", "airflow-apiserver", "sftp", "mail")


def _cluster_module():
    spec = importlib.util.spec_from_file_location("cluster_script", REPO / "scripts" / "cluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cluster = _cluster_module()


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker compose sees it with .env.example's values."""
    return cluster.interpolate(yaml.safe_load((REPO / "docker-compose.yaml").read_text()), cluster.env_file())


@pytest.fixture(scope="module")
def planned(compose, tmp_path_factory) -> dict[str, dict]:
    ports = cluster.allocate_ports(compose)
    databases = cluster.databases_for(cluster.PG_DEFAULT, "cdrflow_plan")
    return {p["name"]: p for p in cluster.plan(compose, tmp_path_factory.mktemp("plan"), ports, databases)}


def test_the_compose_file_follows_the_compose_specification(compose):
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)
    raw = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(raw)  # before interpolation too
    bad = {**compose, "services": {**compose["services"], "redis": {**compose["services"]["redis"], "restart": 3}}}
    with pytest.raises(jsonschema.ValidationError):  # the schema does check services
        jsonschema.Draft7Validator(schema).validate(bad)


def test_the_compose_file_has_the_official_shape_with_health_checks(compose):
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "warehouse",
        "redis",
        "objects",
        "objects-init",
        "sftp",
        "mail",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker-1",
        "airflow-worker-2",
    }
    for name, service in services.items():
        if name not in ("objects-init", "airflow-init"):  # those run once
            assert service.get("healthcheck"), f"{name} has no health check"
        for dep, how in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if dep.endswith("-init") else "service_healthy"
            assert how == {"condition": wanted}, f"{name} -> {dep}"
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert compose["x-airflow-common"]["build"] == "."
    assert "./mappings:/opt/cdrflow/mappings:ro" in compose["x-airflow-common"]["volumes"]
    raw = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["x-airflow-common"]["environment"]
    for secret in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "CDRFLOW_LINK_SECRET"):
        assert ":?" in raw[secret] and env[secret], f"{secret}: required from .env, with a value in .env.example"
    # the raw store and the artefacts on the object store, whose bucket objects-init creates
    init = services["objects-init"]
    bucket_name = env["CDRFLOW_RAW_STORE"].split("@", 1)[1].split("/")[0]
    assert env["CDRFLOW_ARTIFACT_STORE"].startswith(f"s3://cdrflow_objects@{bucket_name}/")
    assert (
        init["environment"]["CDRFLOW_BUCKET"] == bucket_name
        and 'mc mb --ignore-existing "objects/${CDRFLOW_BUCKET}"' in init["command"][1]
    )


def test_a_secret_missing_from_env_stops_compose_with_a_message(monkeypatch):
    raw = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    values = {k: v for k, v in cluster.env_file().items() if k != "AIRFLOW_JWT_SECRET"}
    with pytest.raises(SystemExit, match="AIRFLOW_JWT_SECRET is not set: copy .env.example to .env"):
        cluster.interpolate(raw, values)


def test_the_process_cluster_runs_what_the_compose_file_describes(compose, planned):
    services = compose["services"]
    airflow = {n for n, s in services.items() if s.get("image") == compose["x-airflow-common"]["image"]}
    assert set(planned) == airflow
    assert set(services) == airflow | set(cluster.LOCAL_EQUIVALENTS), "every service is run or has a local equivalent"
    assert next(iter(planned)) == "airflow-init"
    for name, p in planned.items():
        service = services[name]
        command = service["command"]
        argv = shlex.split(command) if isinstance(command, str) else command
        assert p["argv"] in (argv, ["airflow", *argv]), f"{name}: the command differs"
        local, declared = p["env"], {k: str(v) for k, v in service["environment"].items()}
        assert set(local) - set(declared) <= cluster.LOCAL_ONLY, f"{name}: settings only the cluster has"
        assert set(declared) <= set(local), f"{name}: a compose setting the cluster drops"
        for key, value in declared.items():
            if local[key] != value:  # only addresses and paths may differ
                assert any(
                    f"@{h}" in value or f"//{h}:" in value or f"//{h}/" in value or f'"host": "{h}"' in value
                    for h in SERVICE_HOSTS
                ) or (value.startswith("/opt/")), f"{name}: {key} differs: {value!r} -> {local[key]!r}"
    # Celery: each worker's own host name, in the task instances too; its queues as the DAGs use them
    for name in ("airflow-worker-1", "airflow-worker-2"):
        argv = planned[name]["argv"]
        hostname = services[name]["hostname"]
        assert argv[argv.index("--celery-hostname") + 1] == hostname == planned[name]["env"]["CDRFLOW_HOSTNAME"]
    queues = {
        n: set(planned[n]["argv"][planned[n]["argv"].index("--queues") + 1].split(","))
        for n in planned
        if "worker" in n
    }
    env = planned["airflow-scheduler"]["env"]
    assert queues == {
        "airflow-worker-1": {env["CDRFLOW_COLLECT_QUEUE"], env["CDRFLOW_PROCESS_QUEUE"]},
        "airflow-worker-2": {env["CDRFLOW_PROCESS_QUEUE"]},
    }
    assert f"pools set {env['CDRFLOW_WAREHOUSE_POOL']} " in planned["airflow-init"]["argv"][2]
    # what differs only because the processes share a machine: their ports and state folders
    ports = [p["env"]["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] for p in planned.values() if "worker" in p["name"]]
    assert len(set(ports)) == 2
    assert len({p["env"]["AIRFLOW_HOME"] for p in planned.values()}) == len(planned)
    states = {p["env"]["CDRFLOW_STATE_DIR"] for p in planned.values()}
    assert len(states) == 1, "the shared state volume is one folder for every process"


def test_the_process_cluster_serves_the_sftp_and_mail_accounts_the_compose_file_declares(compose, planned):
    """``sftp`` and ``mail`` run as the project's real servers (sshd, Dovecot) with the user, password
    and directory of the compose service and of the workers' connections to them: the connections
    are the compose file's, pointed at the local ports."""
    sftp, mail = cluster.sftp_account(compose), cluster.mail_account(compose)
    assert compose["services"]["sftp"]["command"] == f"{sftp['user']}:{sftp['password']}:::outgoing/cdr"
    assert sftp == {
        "user": "carrier",
        "password": "carrier-secret",
        "directories": ["outgoing/cdr"],
        "conn_id": "acme_sftp",
    }
    assert mail == {"user": "cdr", "password": "mail-secret", "conn_id": "cdrflow_mailbox"}
    declared = compose["x-airflow-common"]["environment"]
    for service, account in (("sftp", sftp), ("mail", mail)):
        key = f"AIRFLOW_CONN_{account['conn_id'].upper()}"
        remote, local = json.loads(declared[key]), json.loads(planned["airflow-worker-1"]["env"][key])
        assert remote["host"] == service and (remote["login"], remote["password"]) == (
            account["user"],
            account["password"],
        )
        assert local["host"] == "127.0.0.1" and local["port"] != remote["port"]
        assert {k: v for k, v in local.items() if k not in ("host", "port")} == {
            k: v for k, v in remote.items() if k not in ("host", "port")
        }
    # the carrier file's commented examples name these connections
    carriers = (REPO / "include" / "carriers.yaml").read_text()
    assert f"conn_id: {sftp['conn_id']}" in carriers and f"conn_id: {mail['conn_id']}" in carriers


def test_tasks_go_to_their_queue_and_the_warehouse_pool(monkeypatch):
    monkeypatch.delenv("CDRFLOW_WAREHOUSE_POOL", raising=False)
    monkeypatch.delenv("CDRFLOW_RETRY_DELAY_SECONDS", raising=False)
    assert "pool" not in defaults.default_args()  # Airflow's default_pool: make airflow, the tests
    monkeypatch.setenv("CDRFLOW_WAREHOUSE_POOL", "cdrflow_warehouse")
    monkeypatch.setenv("CDRFLOW_RETRY_DELAY_SECONDS", "5")
    processing = defaults.default_args()
    assert (processing["queue"], processing["pool"], processing["retry_delay"].total_seconds()) == (
        "cdrflow_process",
        "cdrflow_warehouse",
        5,
    )
    collecting = defaults.collector_args()
    assert collecting["queue"] == "cdrflow_collect" and "pool" not in collecting


# --- what a Celery deployment refuses ---


@pytest.fixture
def celery(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.delenv("CDRFLOW_SHARED_STORAGE", raising=False)
    return monkeypatch


def test_a_local_raw_store_is_refused_under_celery_unless_declared_shared(celery, tmp_path):
    url = (tmp_path / "raw").as_uri()
    with pytest.raises(ConfigurationError, match=r"the raw store .*raw is a local path.*CDRFLOW_SHARED_STORAGE=1"):
        RawStore(url)
    celery.setenv("CDRFLOW_SHARED_STORAGE", "1")
    assert RawStore(url).put_stream(open(__file__, "rb")).size == Path(__file__).stat().st_size
    celery.setenv("CDRFLOW_SHARED_STORAGE", "0")
    RawStore("s3://some-bucket/raw")  # an object store is the same for every worker


def test_a_local_bucket_source_is_refused_under_celery_before_anything_is_read(
    engine, store, carrier, celery, tmp_path
):
    drop = tmp_path / "uploads"
    drop.mkdir()
    (drop / "a.csv").write_bytes(b"x")
    with pytest.raises(ConfigurationError, match=r"bucket source .*uploads is a local path"):
        bucket.collect(engine, store, carrier, BucketSource(kind="bucket", url=str(drop)))
    assert (drop / "a.csv").exists()
    celery.setenv("CDRFLOW_SHARED_STORAGE", "yes")
    (found,) = bucket.collect(engine, store, carrier, BucketSource(kind="bucket", url=str(drop)))
    assert found.is_new


def test_the_embedded_warehouse_is_never_started_under_celery(celery, tmp_path):
    celery.setenv("CDRFLOW_DATABASE_URL", "embedded")
    celery.setenv("CDRFLOW_STATE_DIR", str(tmp_path))
    celery.setenv("CDRFLOW_SHARED_STORAGE", "1")  # shared storage does not make one server many
    with pytest.raises(ConfigurationError, match="embedded warehouse is refused under the CeleryExecutor"):
        db.resolve_url()
    assert list(tmp_path.iterdir()) == [], "nothing was started or written"
