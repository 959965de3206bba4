"""The FastAPI application of the seed APIs (``api-contract.md``), one router per seed.

``create_app()`` is what the Airflow plugin mounts under ``/cdr``; ``standalone_app()`` mounts
the same application under ``/cdr`` of an app of its own, for ``cdrflow api serve`` (uvicorn)
and for deployments that keep the API apart from Airflow. Nothing connects to the warehouse
until the first request.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from cdrflow.api import billing, cdrs, errors, feed, files, links, reports, secrets_filter, session, ui
from cdrflow.api.deps import ApiSettings, Warehouse

PREFIX = "/cdr"

TAGS = [
    {"name": "CDR Files", "description": "Seed 000: the file registry (`/backend/api/v1/CDRFiles/`)."},
    {"name": "Report requests", "description": "Seed 001: CDR report requests (Telnyx v1, `/reporting/cdr_requests`)."},
    {
        "name": "CDRs",
        "description": "Seeds 002 and 003: the CDRs API (Kazoo crossbar, `/v1|v2/accounts/{account_id}/cdrs`).",
    },
    {"name": "Billing feed", "description": "Seed 004: the billing feed (`/billing/feed`), CSV."},
    {"name": "Billing", "description": "Billruns and their invoice files."},
    {"name": "Downloads", "description": "Signed, expiring download links."},
]


def create_app(engine: Engine | None = None, api_settings: ApiSettings | None = None) -> FastAPI:
    """The application; ``engine``: the warehouse (default: the one cdrflow resolves, on first use)."""
    api_settings = api_settings or ApiSettings()
    app = FastAPI(
        title="cdrflow seed APIs",
        description="The CDR Files registry, report requests, the CDRs API and the billing feed.",
        version="1",
        openapi_tags=TAGS,
    )
    app.state.settings = api_settings
    app.state.warehouse = Warehouse(engine, api_settings.database_url)
    errors.install(app)
    secrets_filter.install()
    for module in (session, files, reports, cdrs, feed, billing, links, ui):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document, with its 422 answers said as the 400 the application really gives."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            if "422" in answers:
                invalid = answers.pop("422")
                answers.setdefault("400", {**invalid, "description": "Bad request: a parameter or the body is invalid"})
    app.openapi_schema = spec
    return spec


def standalone_app() -> FastAPI:
    """The API alone (``uvicorn --factory cdrflow.api.app:standalone_app``), under ``/cdr`` as in Airflow."""
    outer = FastAPI(title="cdrflow", docs_url=None, redoc_url=None, openapi_url=None)
    outer.mount(PREFIX, create_app())
    return outer
