"""Register every file in a folder into the cdrflow file registry (manual runs from the UI).

Operators use it to take in files that reached the machine by hand: fill in the folder and
the carrier in the trigger form. Only folders under ``CDRFLOW_REGISTER_ROOTS`` (default
``<state>/uploads``; a relative folder is taken under the first root) are accepted: any other
folder fails the run with one line. Each file is stored in the raw store and recorded by SHA1;
files already seen are recorded as duplicates and never loaded twice. ``announce`` updates the
``cdrflow_files_received`` asset when a new file was registered, so processing starts at once.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from cdrflow.config.vocabulary import FILE_SOURCES
from cdrflow.orchestration.assets import FILES_RECEIVED
from cdrflow.orchestration.defaults import START_DATE, default_args


@dag(
    dag_id="cdrflow_register_folder",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=4,
    tags=["cdrflow", "registry", "manual"],
    default_args=default_args(),
    params={
        "folder": Param(
            type="string",
            minLength=1,
            title="Folder",
            description="Folder on the worker holding the CDR files, under CDRFLOW_REGISTER_ROOTS "
            "(default <state>/uploads); a relative path is taken under that folder",
        ),
        "carrier": Param(
            type="string", minLength=1, title="Carrier", description="Carrier code, as in the carriers table"
        ),
        "pattern": Param("*", type="string", title="File name pattern", description="glob, e.g. *.csv"),
        "file_source": Param("upload", enum=list(FILE_SOURCES), title="File source"),
    },
    doc_md=__doc__,
)
def cdrflow_register_folder():
    @task
    def register(params: dict | None = None) -> list[dict]:
        from cdrflow.config import settings
        from cdrflow.intake.rawstore import RawStore
        from cdrflow.sources.folder import FolderRefused, register_folder
        from cdrflow.warehouse import db

        try:
            results = register_folder(
                db.get_engine(),
                RawStore(settings.raw_store_url()),
                params["folder"],
                carrier=params["carrier"],
                file_source=params["file_source"],
                pattern=params["pattern"],
            )
        except FolderRefused as exc:  # a retry would be refused the same way
            raise AirflowFailException(str(exc)) from exc
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

    @task(outlets=[FILES_RECEIVED])
    def announce(registered: list[dict]) -> int:
        new = sum(r["status"] == "received" for r in registered)
        if not new:
            raise AirflowSkipException("no new file registered: processing not triggered")
        print(f"{new} new file(s) registered: {FILES_RECEIVED.name} updated")
        return new

    announce(register())


cdrflow_register_folder()
