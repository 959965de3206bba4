"""Airflow DAG: build the pending CDR report requests (seed 001). Its shape, schedule (an asset
watched by a trigger, and a sweep every 5 minutes) and params: `cdrflow.orchestration.reports_dag`."""

from __future__ import annotations

from cdrflow.orchestration.reports_dag import reports_dag

dag = reports_dag()
