"""Airflow DAG: notify when a carrier has not delivered by its deadline.

Every 15 minutes, for each carrier with ``deadline: "HH:MM"`` in the carrier file: when that time
has passed today in the carrier's ``timezone`` and no file of it was registered since its
midnight, one notification is sent (the configured notifier; e-mail through the SMTP provider by
default), once per carrier and day (``delivery_alerts``). The logic is in
``cdrflow.orchestration.delivery_deadlines``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from cdrflow.orchestration.defaults import START_DATE, default_args


@dag(
    dag_id="cdrflow_delivery_deadlines",
    description="Notify when a carrier has not delivered by its deadline (carrier file key deadline)",
    schedule=CronTriggerTimetable("*/15 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    tags=["cdrflow", "monitoring"],
    default_args=default_args(retries=1, retry_delay=timedelta(minutes=2)),
    doc_md=__doc__,
)
def cdrflow_delivery_deadlines():
    @task
    def check_deadlines() -> dict:
        from cdrflow.orchestration.delivery_deadlines import run
        from cdrflow.warehouse import db

        return run(db.get_engine(), get_current_context())

    check_deadlines()


cdrflow_delivery_deadlines()
