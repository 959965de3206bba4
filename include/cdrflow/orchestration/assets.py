"""The Airflow assets cdrflow's DAGs share: collectors update them, the processing DAG waits on them."""

from __future__ import annotations

from airflow.sdk import Asset

# Updated by a collector run that registered at least one new file (status received).
FILES_RECEIVED = Asset(name="cdrflow_files_received", uri="cdrflow://registry/files-received", group="cdrflow")
