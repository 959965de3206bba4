"""Airflow DAG: re-rate a closed billing period from a form. Its shape and params: `cdrflow.orchestration.rerate_dag`."""

from __future__ import annotations

from cdrflow.orchestration.rerate_dag import rerate_dag

dag = rerate_dag()
