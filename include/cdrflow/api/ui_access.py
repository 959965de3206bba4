"""Who may open the cdrflow page: someone logged in to Airflow, or a cdrflow operator token.

Inside Airflow's API server the page is behind Airflow's own login, checked the way Airflow's
``requires_access_view`` checks its own views: the user comes from the UI's JWT cookie (or an
``Authorization: Bearer`` JWT) through the auth manager (:func:`resolve_user_from_token`: an
expired token 401, a forged one 403), and the auth manager must allow the ``WEBSITE`` view (any
user who may use Airflow's UI; what a user may *do* from the page, triggering a DAG, is checked
again by Airflow's REST API per DAG).

Outside Airflow (``cdrflow api serve``, uvicorn) there is no auth manager to ask, so an Airflow
cookie proves nothing there: the page answers 401 unless the request carries an operator API
token (``cdrflow accounts token --operator``) in ``X-Auth-Token``; an account's token answers 403
(the page shows every carrier and account). Only the header is taken, never a query string, so
a token does not end up in links or access logs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from cdrflow.api.errors import ApiError
from cdrflow.warehouse.credentials import principal_for_token

AIRFLOW_COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN


@dataclass(frozen=True)
class Viewer:
    """Who is looking: an Airflow user (``via="airflow"``) or an operator token (``via="token"``)."""

    name: str
    via: str

    @property
    def may_trigger(self) -> bool:
        """The page triggers DAGs through Airflow's REST API with the browser's Airflow session."""
        return self.via == "airflow"


def auth_manager() -> Any | None:
    """Airflow's auth manager when this process is Airflow's API server, else None. Nothing is
    imported when Airflow's API application was never loaded in this process."""
    if "airflow.api_fastapi.app" not in sys.modules:
        return None
    from airflow.api_fastapi.app import get_auth_manager

    try:
        return get_auth_manager()
    except RuntimeError:  # imported, but no API server initialised it
        return None


def airflow_root(request: Request) -> str:
    """The path of Airflow's own root (``""`` or ``/airflow`` behind a base URL): the mount's
    root path without the mount point."""
    from cdrflow.api.app import PREFIX

    root = request.scope.get("root_path", "")
    return root[: -len(PREFIX)] if root.endswith(PREFIX) else ""


def _login_required(request: Request, manager: Any, message: str, status: int = 401) -> ApiError:
    login = manager.get_url_login(next_url=str(request.url))
    if login.startswith("/") and not login.startswith(airflow_root(request) + "/"):
        login = airflow_root(request) + login
    return ApiError(status, message, code="login_required", data={"href": login, "link": "Log in to Airflow"})


def _operator(request: Request, token: str) -> Viewer:
    with request.app.state.warehouse.engine.connect() as conn:
        principal = principal_for_token(conn, token)
    if principal is None:
        raise ApiError(401, "invalid credentials", code="invalid_credentials")
    if not principal.is_operator:
        raise ApiError(403, "this page is for operators: an account's token does not open it", code="forbidden")
    return Viewer(f"operator token {principal.credential_id}", "token")


async def _airflow_user(request: Request) -> Viewer:
    manager = auth_manager()
    if manager is None:
        raise ApiError(
            401,
            "this page is served inside Airflow's API server, behind Airflow's login; "
            "here (no Airflow) only an operator token in X-Auth-Token opens it",
            code="login_required",
        )
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = value.strip() if scheme.lower() == "bearer" and value.strip() else request.cookies.get(AIRFLOW_COOKIE)
    if not token:
        raise _login_required(request, manager, "log in to Airflow to see this page")
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token
    from fastapi import HTTPException

    try:
        user = await resolve_user_from_token(token)
    except HTTPException as exc:
        raise _login_required(
            request, manager, f"Airflow's login: {exc.detail}; log in again", exc.status_code
        ) from None
    if not manager.is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise ApiError(403, f"Airflow user {user.get_name()} may not use Airflow's UI", code="forbidden")
    return Viewer(user.get_name(), "airflow")


async def current_viewer(request: Request) -> Viewer:
    """The page's visitor, or an :class:`ApiError` (rendered as an HTML page for these paths)."""
    if token := request.headers.get("x-auth-token", "").strip():
        return await run_in_threadpool(_operator, request, token)
    return await _airflow_user(request)


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
