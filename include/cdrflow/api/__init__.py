"""cdrflow's HTTP APIs (issue 12): the five seed APIs in one FastAPI application.

:func:`cdrflow.api.app.create_app` builds it; ``plugins/cdrflow_api.py`` mounts it in Airflow's
API server under ``/cdr``, and ``cdrflow api serve`` runs the same application alone under
uvicorn, also under ``/cdr``, so every URL is the same either way.
"""
