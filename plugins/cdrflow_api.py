"""Mounts cdrflow's seed APIs (``cdrflow.api``) in Airflow's API server under ``/cdr``, and puts
the cdrflow page (``/cdr/operator/``, :mod:`cdrflow.api.ui`) in the Airflow UI's menu.

Airflow gives a mounted app no authentication of its own: the application checks the seeds'
credentials itself (``cdrflow.api.auth``), and the page checks Airflow's own login (the UI's
session cookie, through Airflow's auth manager: ``cdrflow.api.ui_access``). The menu entry is an
``external_views`` item with a ``url_route``: the UI shows the page in a frame at
``/plugin/cdrflow``, inside its own navigation. Importing this file connects to nothing.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cdrflow.api.app import PREFIX, create_app

PAGE = f"{PREFIX}/operator/"


class CdrflowApiPlugin(AirflowPlugin):
    name = "cdrflow_api"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "cdrflow seed APIs"}]
    external_views = [
        {
            "name": "cdrflow",
            "href": PAGE,
            "destination": "nav",
            "url_route": "cdrflow",
        }
    ]
