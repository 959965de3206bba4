"""Airflow DAG: daily, delete expired CDR reports from the artifact store and mark their requests
Expired (4). Its shape and schedule: `cdrflow.orchestration.reports_dag`."""

from __future__ import annotations

from cdrflow.orchestration.reports_dag import housekeeping_dag

dag = housekeeping_dag()
