"""Register every file in a folder into the cdrflow file registry (manual runs from the UI).

Operators use it to take in files that reached the machine by hand: **Trigger DAG w/ config**,
fill in the folder and choose the carrier (a choice from the carrier file). Only folders under
``CDRFLOW_REGISTER_ROOTS`` (default ``<state>/uploads``; a relative folder is taken under the
first root) are accepted: any other folder fails the run with one line. Each file is stored in
the raw store and recorded by SHA1; files already seen are recorded as duplicates and never
loaded twice.

``announce`` updates the ``cdrflow_files_received`` asset when a new file was registered: that
asset event starts ``cdrflow_process`` at once (no wait for its five-minute sweep). When nothing
new was registered it is skipped and processing is not woken.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from cdrflow.config.vocabulary import FILE_SOURCES
from cdrflow.orchestration.assets import FILES_RECEIVED
from cdrflow.orchestration.defaults import START_DATE, default_args
from cdrflow.orchestration.params import carrier_param


@dag(
    dag_id="cdrflow_register_folder",
    description="Register the CDR files of a folder on the worker; processing starts at once",
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
        "carrier": carrier_param(required=True, description="The carrier that sent these files"),
        "pattern": Param(
            "*", type=["null", "string"], title="File name pattern", description="glob, e.g. *.csv; empty: every file"
        ),
        "file_source": Param("upload", enum=list(FILE_SOURCES), title="File source"),
    },
    doc_md=__doc__,
)
def cdrflow_register_folder():
    @task
    def register(params: dict | None = None) -> list[dict]:
        import logging

        from cdrflow.config import settings
        from cdrflow.config.errors import UnknownCarrier
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
                pattern=(params.get("pattern") or "").strip() or "*",
            )
        except (FolderRefused, UnknownCarrier) as exc:  # a retry would be refused the same way
            logging.getLogger("cdrflow.registry").error("nothing registered: %s", exc)  # the log's first line
            raise AirflowFailException(f"nothing registered: {exc}") from exc
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
        import logging

        new = [r["id"] for r in registered if r["status"] == "received"]
        if not new:
            raise AirflowSkipException("no new file registered: processing not triggered")
        logging.getLogger("cdrflow.registry").info(
            "%d new file(s) registered (ids %s): asset %s updated, cdrflow_process starts now",
            len(new),
            ", ".join(map(str, new)),
            FILES_RECEIVED.name,
        )
        return len(new)

    announce(register())


cdrflow_register_folder()
