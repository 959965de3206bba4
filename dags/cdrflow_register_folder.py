"""Register every file in a folder into the cdrflow file registry (manual runs from the UI).

Operators use it to take in files that reached the machine by hand: fill in the folder and
the carrier in the trigger form. Each file is stored in the raw store and recorded by SHA1;
files already seen are recorded as duplicates and never loaded twice.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    dag_id="cdrflow_register_folder",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["cdrflow", "registry", "manual"],
    default_args={
        "owner": "cdrflow",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
    },
    params={
        "folder": Param(
            type="string",
            minLength=1,
            title="Folder",
            description="Absolute path of a folder on the worker holding the CDR files",
        ),
        "carrier": Param(
            type="string", minLength=1, title="Carrier", description="Carrier code, as in the carriers table"
        ),
        "pattern": Param("*", type="string", title="File name pattern", description="glob, e.g. *.csv"),
        "file_source": Param("upload", enum=["upload", "email", "sftp", "ftp", "bucket", "api"], title="File source"),
    },
    doc_md=__doc__,
)
def cdrflow_register_folder():
    @task
    def register(params: dict | None = None) -> list[dict]:
        from pathlib import Path

        from cdrflow.config import settings
        from cdrflow.intake.rawstore import RawStore
        from cdrflow.sources.folder import register_folder
        from cdrflow.warehouse import db

        results = register_folder(
            db.get_engine(),
            RawStore(settings.raw_store_url()),
            Path(params["folder"]),
            carrier=params["carrier"],
            file_source=params["file_source"],
            pattern=params["pattern"],
        )
        return [
            {
                "id": r.file_id,
                "file": r.file_name,
                "sha1": r.sha1,
                "size": r.size,
                "status": str(r.status),
                "duplicate_of": r.duplicate_of,
            }
            for r in results
        ]

    register()


cdrflow_register_folder()
