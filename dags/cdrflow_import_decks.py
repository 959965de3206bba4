"""Airflow DAG: import the rate decks dropped into the deck drop folder or bucket (CDRFLOW_DECK_DROP).

Its shape, schedule, naming convention and manual-run form: `cdrflow.orchestration.deck_import_dag`
and `cdrflow.billing.deck_drop_names`.
"""

from __future__ import annotations

from cdrflow.orchestration.deck_import_dag import deck_import_dag

dag = deck_import_dag()
