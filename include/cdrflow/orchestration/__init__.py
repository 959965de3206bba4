"""Airflow's side of cdrflow: DAG shapes, forms, summaries. Importing it (every DAG file does,
so every task process does before its task starts) keeps library chatter out of task logs
(:mod:`cdrflow.orchestration.quiet_logs`)."""

from cdrflow.orchestration.quiet_logs import quiet

quiet()
