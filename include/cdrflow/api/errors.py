"""Errors in each seed API's own envelope (``api-contract.md`` §0.3, §0.4).

Which envelope a response gets follows from its path, so every error (a route's, an unknown
path's, a validation error's, a crash's) speaks the dialect of the API it was addressed to:

======================================  ====================================================
path (below the mount, ``/cdr``)        error body
======================================  ====================================================
``/reporting/...``, ``/v1/reporting``   Telnyx: ``{"errors": [{"code", "title", "detail", "source": {"pointer"}}]}``
``/v1/...``, ``/v2/...`` (Kazoo)        ``{"status": "error", "error": "401", "message", "data", "request_id"}``
``/billing/feed``                       plain text (the feed is CSV)
``/operator/...`` (the cdrflow page)    a small HTML page (a link to log in when that helps)
anything else (CDR Files, billing...)   ``{"error": {"code", "message"}}``
======================================  ====================================================

Request validation errors answer 400 (FastAPI's 422 is in no seed). Every response carries an
``X-Request-Id`` header (kazoo-sdk reads it on a 500).
"""

from __future__ import annotations

import html
import logging
import uuid
from enum import Enum
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class Style(Enum):
    FILES = "files"
    TELNYX = "telnyx"
    KAZOO = "kazoo"
    FEED = "feed"
    PAGE = "page"


class ApiError(Exception):
    """An error a route answers with: rendered in the envelope of the API it belongs to.

    ``code`` is a short machine word (``invalid_credentials``, ``bad_identifier``, ``date_range``);
    ``pointer`` names the offending request field for the Telnyx envelope (``/start_time``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        pointer: str | None = None,
        data: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or HTTPStatus(status).phrase.lower().replace(" ", "_")
        self.pointer = pointer
        self.data = data


def unauthorized(message: str = "invalid credentials") -> ApiError:
    return ApiError(401, message, code="invalid_credentials")


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, message, code="bad_identifier")


def bad_request(message: str, *, pointer: str | None = None, code: str = "invalid_request") -> ApiError:
    return ApiError(400, message, code=code, pointer=pointer)


def route_path(request: Request) -> str:
    """The request's path below the mount point (``/cdr`` in Airflow)."""
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def style_for(path: str) -> Style:
    if path.startswith(("/reporting/", "/v1/reporting/")) or path in ("/reporting", "/v1/reporting"):
        return Style.TELNYX
    if path.startswith(("/v1/", "/v2/")):
        return Style.KAZOO
    if path.rstrip("/") == "/billing/feed":
        return Style.FEED
    if path == "/operator" or path.startswith("/operator/"):
        return Style.PAGE
    return Style.FILES


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.state.request_id = uuid.uuid4().hex
    return rid


def render(request: Request, error: ApiError) -> Response:
    style = style_for(route_path(request))
    rid = request_id(request)
    headers = {"X-Request-Id": rid}
    if error.status == 401 and style is Style.TELNYX:
        headers["WWW-Authenticate"] = "Bearer"
    if style is Style.KAZOO:
        body: Any = {
            "status": "error",
            "error": str(error.status),
            "message": error.code,
            "data": error.data if error.data is not None else {"message": error.message},
            "request_id": rid,
        }
        return JSONResponse(body, status_code=error.status, headers=headers)
    if style is Style.TELNYX:
        item: dict[str, Any] = {
            "code": str(error.status),
            "title": HTTPStatus(error.status).phrase,
            "detail": error.message,
        }
        if error.pointer:
            item["source"] = {"pointer": error.pointer}
        return JSONResponse({"errors": [item]}, status_code=error.status, headers=headers)
    if style is Style.FEED:
        return PlainTextResponse(f"error: {error.message}\n", status_code=error.status, headers=headers)
    if style is Style.PAGE:
        return HTMLResponse(_page(error), status_code=error.status, headers=headers)
    body = {"error": {"code": error.status, "message": error.message}}
    return JSONResponse(body, status_code=error.status, headers=headers)


def _page(error: ApiError) -> str:
    """The cdrflow page's error: the status and the message; ``data`` may give a link (``href``,
    ``link``), such as Airflow's login."""
    title = f"{error.status} {HTTPStatus(error.status).phrase}"
    data = error.data or {}
    link = (
        f'<p><a href="{html.escape(data["href"])}">{html.escape(data.get("link", "Continue"))}</a></p>'
        if data.get("href")
        else ""
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · cdrflow</title></head>'
        f'<body style="font: 14px system-ui, sans-serif; margin: 2em"><h1>{title}</h1>'
        f'<p class="error">{html.escape(error.message)}</p>{link}</body></html>'
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """The first validation problem as one line, and a JSON pointer to the field."""
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc)
    message = str(first.get("msg", "invalid value"))
    return (f"{where}: {message}" if where else message), ("/" + "/".join(loc) if loc else None)


def install(app: FastAPI) -> None:
    """Register the handlers and the request-id middleware on ``app``."""

    @app.middleware("http")
    async def _request_id(request: Request, call_next):
        rid = request_id(request)
        response = await call_next(request)
        response.headers.setdefault("X-Request-Id", rid)
        return response

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        message, pointer = _validation_message(exc)
        return render(request, ApiError(400, message, code="invalid_request", pointer=pointer))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return render(request, ApiError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, route_path(request))
        return render(request, ApiError(500, "internal error; the request id is in X-Request-Id", code="internal"))
