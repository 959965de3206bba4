"""FastAPI dependencies: the application's settings and a warehouse connection per request.

Routes are plain ``def`` functions (FastAPI runs them in its thread pool) on a SQLAlchemy
connection from the application's own engine, so tests hand in a real engine through
:func:`cdrflow.api.app.create_app`. The connection's work is committed when the route returns
without error (after a streamed response has been sent) and rolled back otherwise; a route whose
answer hands out something just written commits first (:func:`commit_now`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine, create_engine


@dataclass
class ApiSettings:
    """What a deployment may set (environment variables in brackets).

    - ``base_url`` [``CDRFLOW_API_BASE_URL``]: the external URL of the mount point
      (``https://cdr.example.com/cdr``) used in absolute links (``report_url``); default: the
      request's own base URL, which is internal behind a proxy (``api-contract.md`` §0.8).
    - ``files_page_cap``: most files a CDR Files list returns (the client re-polls with idAfter).
    - ``feed_page_cap``: most records a billing feed response returns (the client re-polls with
      fromid = the last id it got).
    - ``database_url``: the warehouse (default: the one cdrflow resolves, ``cdrflow db url``).
    """

    base_url: str | None = field(default_factory=lambda: os.environ.get("CDRFLOW_API_BASE_URL") or None)
    files_page_cap: int = 1000
    feed_page_cap: int = 10000
    database_url: str | None = None


CONNECTIONS = 32  # per API server process; below the thread pool's 40 (see connection())


class Warehouse:
    """The application's engine, created on the first request (importing the plugin connects to
    nothing) unless one was handed in, and the slots that bound how many requests hold one of
    its connections at a time."""

    def __init__(self, engine: Engine | None, url: str | None):
        self._given = engine
        self._url = url

    @cached_property
    def engine(self) -> Engine:
        if self._given is not None:
            return self._given
        from cdrflow.warehouse import db

        url = db.normalise_url(self._url) if self._url else db.resolve_url()
        return create_engine(url, pool_pre_ping=True, pool_size=CONNECTIONS // 2, max_overflow=CONNECTIONS // 2)

    @cached_property
    def slots(self) -> asyncio.Semaphore:
        return asyncio.Semaphore(CONNECTIONS)


def settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def engine(request: Request) -> Engine:
    return request.app.state.warehouse.engine


async def connection(request: Request) -> AsyncIterator[Connection]:
    """A connection for the request. Its work is committed when the route returns without error,
    which is after a streamed response has been sent (the stream reads from it). A route that
    writes something the client may use at once (a token, a new request) calls
    :func:`commit_now` before it answers, so the row is visible when the answer arrives.

    A request first waits for a slot in the event loop, then takes a connection in a thread. Taking
    it in a thread straight away deadlocks under load: with every pooled connection held by
    requests that wait for a thread to run their route, the threads all wait for a connection
    (200 concurrent clients answered 500 after the pool's timeout). With fewer slots than threads,
    a thread never waits for a connection."""
    warehouse = request.app.state.warehouse
    async with warehouse.slots:
        conn = await run_in_threadpool(warehouse.engine.connect)
        try:
            yield conn
        except BaseException:
            await run_in_threadpool(_finish, conn, False)
            raise
        await run_in_threadpool(_finish, conn, True)


def _finish(conn: Connection, commit: bool) -> None:
    try:
        conn.commit() if commit else conn.rollback()
    finally:
        conn.close()


def commit_now(conn: Connection) -> None:
    """Commit the request's work before answering (later statements start a new transaction)."""
    conn.commit()


Conn = Annotated[Connection, Depends(connection)]
Settings = Annotated[ApiSettings, Depends(settings)]
WarehouseEngine = Annotated[Engine, Depends(engine)]


def external_base(request: Request, api_settings: ApiSettings) -> str:
    """The absolute URL of the mount point (``.../cdr``) for links handed to clients."""
    if api_settings.base_url:
        return api_settings.base_url.rstrip("/")
    return str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
