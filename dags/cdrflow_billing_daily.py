"""Airflow DAG: the daily billing run. Its shape, schedule and params: `cdrflow.orchestration.billing_dag`."""

from __future__ import annotations

from cdrflow.orchestration.billing_dag import billing_dag

dag = billing_dag("daily")
