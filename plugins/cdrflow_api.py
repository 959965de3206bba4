"""Mounts cdrflow's seed APIs (``cdrflow.api``) in Airflow's API server under ``/cdr``.

Airflow gives a mounted app no authentication of its own: the application checks the seeds'
credentials itself (``cdrflow.api.auth``). Importing this file connects to nothing.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cdrflow.api.app import PREFIX, create_app


class CdrflowApiPlugin(AirflowPlugin):
    name = "cdrflow_api"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "cdrflow seed APIs"}]
