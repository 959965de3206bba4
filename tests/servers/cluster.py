"""The process cluster of ``make cluster`` for the tests: docker-compose.yaml's services as real
processes (Airflow on the CeleryExecutor with two workers, Redis, moto's S3, PostgreSQL, sshd's
SFTP and Dovecot's IMAP: their accounts in ``state["servers"]``).

:func:`start` runs ``scripts/cluster.py up --background`` in a folder of the test's own, with
two databases of its own on the test server; :class:`Cluster` drives it the way an operator
does (the REST API to unpause DAGs, files dropped into the carriers' upload folders) and reads
the outcome (Airflow's task instances, the warehouse). Faults: :meth:`Cluster.kill_worker`
SIGKILLs a worker and everything it started, :meth:`Cluster.restart_broker` stops Redis and
starts it again on its port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import Engine, create_engine, text

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster.py"


@dataclass
class Cluster:
    folder: Path
    state: dict
    _token: str | None = None
    _engines: dict[str, Engine] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.state["api"]

    def env(self, service: str) -> dict[str, str]:
        return self.state["env"][service]

    @property
    def workers(self) -> dict[str, str]:
        """Compose service -> the host name its task instances carry."""
        return self.state["workers"]

    def engine(self, which: str) -> Engine:
        """``metadata`` (Airflow's) or ``warehouse``: read-only looks from the test."""
        if which not in self._engines:
            key = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" if which == "metadata" else "AIRFLOW_CONN_CDRFLOW_WAREHOUSE"
            url = self.env("airflow-scheduler")[key].replace("postgresql://", "postgresql+psycopg2://", 1)
            self._engines[which] = create_engine(url)
        return self._engines[which]

    def query(self, which: str, sql: str, **params: Any) -> list:
        with self.engine(which).connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def headers(self) -> dict[str, str]:
        if self._token is None:
            password = self.env("airflow-init")["AIRFLOW_ADMIN_PASSWORD"]
            r = httpx.post(f"{self.api}/auth/token", json={"username": "admin", "password": password}, timeout=30)
            r.raise_for_status()
            self._token = r.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def unpause(self, *dag_ids: str, timeout: float = 120) -> None:
        """Unpause DAGs once the dag-processor has parsed them (Airflow's REST API)."""
        for dag_id in dag_ids:

            def parsed(dag_id: str = dag_id) -> bool:
                return httpx.get(f"{self.api}/api/v2/dags/{dag_id}", headers=self.headers(), timeout=30).is_success

            self.wait(parsed, f"DAG {dag_id} parsed", timeout)
            r = httpx.patch(
                f"{self.api}/api/v2/dags/{dag_id}", headers=self.headers(), json={"is_paused": False}, timeout=30
            )
            r.raise_for_status()

    def pause(self, *dag_ids: str) -> None:
        for dag_id in dag_ids:
            r = httpx.patch(
                f"{self.api}/api/v2/dags/{dag_id}", headers=self.headers(), json={"is_paused": True}, timeout=30
            )
            r.raise_for_status()

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """A manual run of ``dag_id`` (Trigger DAG w/ config, through the REST API); its run id."""
        r = httpx.post(
            f"{self.api}/api/v2/dags/{dag_id}/dagRuns",
            headers=self.headers(),
            json={"logical_date": None, "conf": conf},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        found = self.query(
            "metadata", "SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
        )
        return found[0][0] if found else None

    def stored(self, uri: str) -> bytes:
        """The bytes of ``s3://<conn id>@<bucket>/<key>`` in the cluster's object store (moto)."""
        conn = json.loads(self.env("airflow-scheduler")["AIRFLOW_CONN_CDRFLOW_OBJECTS"])
        bucket, key = uri.removeprefix("s3://").split("@", 1)[1].split("/", 1)
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=conn["extra"]["endpoint_url"],
            aws_access_key_id=conn["login"],
            aws_secret_access_key=conn["password"],
            region_name=conn["extra"]["region_name"],
        )
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def uploads(self, carrier: str) -> Path:
        """The upload folder of ``carrier``'s local bucket source (shared by every process)."""
        folder = Path(self.env("airflow-worker-1")["CDRFLOW_STATE_DIR"]) / "uploads" / carrier
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def task_instances(self, dag_id: str) -> list:
        return self.query(
            "metadata",
            "SELECT run_id, task_id, map_index, state, hostname, queue, pool, try_number FROM task_instance "
            "WHERE dag_id = :d ORDER BY start_date",
            d=dag_id,
        )

    def wait(self, check: Callable[[], Any], what: str, timeout: float, every: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = check()
            except (httpx.HTTPError, OSError):
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f}s\n{self.tails()}")
            time.sleep(every)

    def tails(self, lines: int = 15) -> str:
        out = []
        for name, info in self.state["processes"].items():
            text_ = Path(info["log"]).read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {name} ({info['log']})\n" + "\n".join(t[:300] for t in text_))
        return "\n".join(out)

    def kill_worker(self, service: str) -> list[int]:
        """SIGKILL ``service``'s worker and every process under it (its task processes): a lost
        machine, not a shutdown. Returns the pids killed."""
        root = psutil.Process(self.state["processes"][service]["pid"])
        victims = [root, *root.children(recursive=True)]
        for p in victims:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=10)
        return [p.pid for p in victims]

    def restart_broker(self) -> None:
        """Stop Redis (SIGTERM: it writes its append-only file) and start it again, same port."""
        info = self.state["processes"]["redis"]
        proc = psutil.Process(info["pid"])
        proc.terminate()
        proc.wait(timeout=15)
        with open(info["log"], "ab") as log:
            new = subprocess.Popen(info["argv"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        info["pid"] = new.pid
        (self.folder / "cluster.json").write_text(json.dumps(self.state, indent=1))

    def stop(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        subprocess.run(
            [sys.executable, str(SCRIPT), "down", "--dir", str(self.folder), "--drop", "--grace", "5"],
            timeout=180,
            check=False,
        )


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cluster_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_servers() -> dict[str, dict]:
    """The SFTP and mail accounts docker-compose.yaml declares (user, password, connection id; the
    SFTP directories), as the process cluster serves them."""
    script = _script()
    compose = script.load_compose({})
    return {"sftp": script.sftp_account(compose), "mail": script.mail_account(compose)}


def start(folder: Path, pg_url: str, settings: dict[str, str]) -> Cluster:
    """Start the process cluster in ``folder`` (databases ``cdrflow_cluster_<random>_*`` on
    ``pg_url``'s server) with ``settings`` over .env.example's."""
    name = f"cdrflow_cluster_{uuid.uuid4().hex[:8]}"
    command = [sys.executable, str(SCRIPT), "up", "--background", "--dir", str(folder), "--name", name]
    command += ["--pg-url", pg_url]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    state_file = folder / "cluster.json"
    if out.returncode != 0:
        if state_file.exists():  # started in part: stop what did start
            subprocess.run([sys.executable, str(SCRIPT), "down", "--dir", str(folder), "--drop"], timeout=180)
        raise RuntimeError(f"the cluster did not start:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
    return Cluster(folder, json.loads(state_file.read_text()))
