"""cdrflow on the CeleryExecutor, proven with real processes: ``make cluster``'s process cluster
(docker-compose.yaml's services: api-server, scheduler, dag-processor, triggerer, two Celery
workers, Redis, moto's S3 for the raw store, the warehouse on PostgreSQL), the scheduler running
everything as in production (no ``dag.test()``).

One cluster for the module (starting it costs ~30 s on two cores). The tests run in order: a day
of three carriers with the broker restarting during the run, then a worker killed mid-load.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from tests.servers import cluster as cluster_server

from cdrflow.dev import generate

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROCESSING = ("cdrflow_collect_bucket", "cdrflow_process")
SETTINGS = {
    "CDRFLOW_COLLECT_EVERY_MINUTES": "0.25",  # collect every 15 s
    "CDRFLOW_WORKER_CONCURRENCY": "2",
    "CDRFLOW_TASK_HEARTBEAT_TIMEOUT": "20",  # a lost worker's task is failed after 20 s...
    "CDRFLOW_RETRY_DELAY_SECONDS": "5",  # ...and tried again 5 s later
}
CARRIERS = [
    {"code": "acme", "file_type": "asterisk_csv", "ext": "csv", "write": generate.write_asterisk_csv},
    {"code": "kazoo", "file_type": "kazoo_json", "ext": "json", "write": generate.write_kazoo_json},
    {"code": "telco", "file_type": "telnyx_csv", "ext": "csv", "write": generate.write_telnyx_csv},
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_admin_url):
    folder = tmp_path_factory.mktemp("cluster")
    carriers = folder / "carriers.yaml"
    carriers.write_text(
        yaml.safe_dump(
            {
                "carriers": [
                    {
                        "code": c["code"],
                        "file_type": c["file_type"],
                        "sources": [{"kind": "bucket", "url": f"uploads/{c['code']}", "patterns": [f"*.{c['ext']}"]}],
                    }
                    for c in CARRIERS
                ]
            }
        )
    )
    running = cluster_server.start(folder / "run", pg_admin_url, {**SETTINGS, "CDRFLOW_CARRIERS": str(carriers)})
    try:
        running.unpause(*PROCESSING)
        yield running
    finally:
        running.stop()


WRITTEN: dict[str, int] = {}  # every file the module dropped -> its rows


def drop_day(cluster, day: datetime, files_per_carrier: int, rows: int, seed: int) -> None:
    """Write a day of files for every carrier into its upload folder (recorded in WRITTEN)."""
    for n, c in enumerate(CARRIERS):
        for i in range(files_per_carrier):
            target = cluster.uploads(c["code"]) / f"{c['code']}-{day:%Y%m%d}-{i:03d}.{c['ext']}.part"
            c["write"](target, rows, seed=seed + 100 * n + i, day=day)
            target.rename(target.with_suffix(""))  # complete files only: the collector skips *.part
            WRITTEN[target.with_suffix("").name] = rows


def files_by_status(cluster) -> dict[str, int]:
    return dict(cluster.query("warehouse", "SELECT status, count(*) FROM cdr_files GROUP BY status"))


def all_loaded(cluster, expected_files: int):
    """Every file loaded and no processing run still going (its report task done)."""
    loaded = files_by_status(cluster) == {"loaded": expected_files}
    busy = cluster.query(
        "metadata", "SELECT count(*) FROM dag_run WHERE dag_id = 'cdrflow_process' AND state <> 'success'"
    )
    return loaded and busy[0][0] == 0


def assert_every_call_once(cluster) -> None:
    """Every file dropped registered once and loaded; each of its rows one call or one quarantined
    row of that file (the calls' key would hide a second load; the file ids do not); no claim left."""
    per_file = cluster.query(
        "warehouse",
        "SELECT f.file_name, (SELECT count(*) FROM calls c WHERE c.file_id = f.id) "
        "+ (SELECT count(*) FROM rejected_rows r WHERE r.file_id = f.id) FROM cdr_files f",
    )
    assert sorted(name for name, _ in per_file) == sorted(WRITTEN)
    assert dict(per_file) == WRITTEN
    assert cluster.query("warehouse", "SELECT count(*) FROM file_claims")[0][0] == 0, "a claim was left behind"


def test_a_day_of_three_carriers_is_loaded_once_by_the_celery_workers_through_a_broker_restart(cluster):
    drop_day(cluster, datetime(2026, 11, 2, tzinfo=UTC), files_per_carrier=3, rows=40, seed=1)
    # the broker restarts mid-run: once the collector has registered some of the files
    cluster.wait(lambda: files_by_status(cluster), "a file registered", timeout=90, every=0.2)
    cluster.restart_broker()
    cluster.wait(lambda: all_loaded(cluster, 9), "9 files loaded", timeout=150)

    assert_every_call_once(cluster)
    collect = cluster.task_instances("cdrflow_collect_bucket")
    process = cluster.task_instances("cdrflow_process")
    hostnames = set(cluster.workers.values())
    # the collectors ran on their queue, only on the worker that serves it
    assert {(t.queue, t.hostname) for t in collect if t.state == "success"} == {("cdrflow_collect", "cdrflow-worker-1")}
    # processing on its queue, in the warehouse pool, on the workers (their own host names)
    done = [t for t in process if t.state == "success"]
    assert {t.task_id for t in done} >= {"housekeeping", "claim", "process", "report"}
    assert {(t.queue, t.pool) for t in done} == {("cdrflow_process", "cdrflow_warehouse")}
    assert {t.hostname for t in done} <= hostnames


def test_a_worker_killed_mid_load_leaves_nothing_half_done(cluster):
    drop_day(cluster, datetime(2026, 11, 4, tzinfo=UTC), files_per_carrier=8, rows=120, seed=3)

    def loading():
        """The running ``process`` task once it has loaded some of its files but not all."""
        running = [
            t for t in cluster.task_instances("cdrflow_process") if t.task_id == "process" and t.state == "running"
        ]
        counts = files_by_status(cluster)
        return running[0] if running and 9 < counts.get("loaded", 0) < 9 + 24 else None

    victim = cluster.wait(loading, "a processing task half-way", timeout=120, every=0.2)
    killed = next(service for service, host in cluster.workers.items() if host == victim.hostname)
    cluster.kill_worker(killed)

    cluster.wait(lambda: all_loaded(cluster, 9 + 24), "every file loaded after the kill", timeout=180)
    assert_every_call_once(cluster)
    tries = [
        t for t in cluster.task_instances("cdrflow_process") if t.run_id == victim.run_id and t.task_id == "process"
    ]
    (final,) = [t for t in tries if t.map_index == victim.map_index]
    survivor = next(host for service, host in cluster.workers.items() if service != killed)
    assert final.state == "success" and final.try_number > victim.try_number
    assert final.hostname == survivor, "the retry ran on the worker that is still alive"
    # so both workers ran tasks: the victim's first try, the survivor's retry
