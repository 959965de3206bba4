"""Signed, expiring download links: report artefacts (seed 001's ``report_url``) and invoice files.

A link is ``<base>/downloads/<token>``. The token names the artefact (a kind and an id, never a
path) and its expiry, signed with a secret of its own (itsdangerous, already installed with
Airflow): ``CDRFLOW_LINK_SECRET``, else a random secret kept in ``<state>/link-secret``. Several
API servers (or machines) must share ``CDRFLOW_LINK_SECRET``. A link works without a login.

Every download is checked against the warehouse: the kind's resolver (registered by the router
that owns it, :func:`register`) returns the artefact or None, so a deleted request's link dies at
once. Answers: a damaged or forged token 403, an expired one 410 (Gone), a deleted artefact 404.
Downloads stream, with ``Content-Length``, ``Content-Disposition`` and single-range ``Range``
support (206), from a local artifact store (Starlette's ``FileResponse``) or any fsspec store such
as S3 (read through ``ObjectStoragePath``, in chunks). S3 presigned URLs last 7 days at most, so
the 30-day link is ours and the bytes come through the API.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Connection

from cdrflow.api.deps import Conn
from cdrflow.api.errors import ApiError, not_found
from cdrflow.config import settings

router = APIRouter()

SALT = "cdrflow-download-link"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Link:
    kind: str  # report | invoice | ...
    ident: str
    expires_at: datetime


@dataclass(frozen=True)
class Download:
    """What a resolver found: the artefact's URL in the store and how to send it."""

    uri: str
    filename: str
    size: int | None = None
    media_type: str = "text/csv"
    expires_at: datetime | None = None  # the warehouse's own expiry, checked as well as the token's


class _File(FileResponse):
    """Starlette's FileResponse in 1 MiB pieces (its default is 64 KiB): a report of hundreds of
    MB goes out in a sixteenth of the reads and sends (bench/reports.py measures the download)."""

    chunk_size = CHUNK


Resolver = Callable[[Connection, str], Download | None]
_RESOLVERS: dict[str, Resolver] = {}


def register(kind: str, resolver: Resolver) -> None:
    """Let links of ``kind`` be downloaded: ``resolver(conn, ident)`` gives the artefact or None."""
    _RESOLVERS[kind] = resolver


def link_secret() -> str:
    if secret := os.environ.get("CDRFLOW_LINK_SECRET"):
        return secret
    path = settings.state_dir() / "link-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _serializer(secret: str | None) -> URLSafeSerializer:
    return URLSafeSerializer(secret or link_secret(), salt=SALT)


def sign(kind: str, ident: str, expires_at: datetime, secret: str | None = None) -> str:
    """The token of a link to artefact ``ident`` of ``kind`` that expires at ``expires_at``."""
    return _serializer(secret).dumps({"k": kind, "i": str(ident), "e": int(expires_at.timestamp())})


def link_url(base: str, kind: str, ident: str, expires_at: datetime, secret: str | None = None) -> str:
    """An absolute download URL; ``base``: the mount's external URL (``deps.external_base``)."""
    return f"{base.rstrip('/')}/downloads/{sign(kind, ident, expires_at, secret)}"


def verify(token: str, secret: str | None = None) -> Link:
    """The link a token names; :class:`ApiError` 403 when it was not signed by us."""
    try:
        data = _serializer(secret).loads(token)
        return Link(str(data["k"]), str(data["i"]), datetime.fromtimestamp(int(data["e"]), UTC))
    except (BadSignature, KeyError, TypeError, ValueError) as exc:
        raise ApiError(403, "this download link is not valid (damaged or forged)", code="invalid_link") from exc


def _expired(when: datetime | None) -> bool:
    return when is not None and when <= datetime.now(UTC)


def _local_path(uri: str) -> Path | None:
    parts = urlsplit(uri)
    if parts.scheme in ("", "file", "local"):
        return Path(unquote(parts.path))
    return None


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One satisfiable ``bytes=a-b`` range as (start, end inclusive); None: send it all."""
    match = _RANGE.match((header or "").strip())
    if not match or size == 0:
        return None
    first, last = match.groups()
    if first == "":
        if not last:
            return None
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start > end or start >= size:
        raise ApiError(416, f"range not satisfiable: the file has {size} bytes", code="range_not_satisfiable")
    return start, end


def _remote(request: Request, item: Download, head: bool) -> Response:
    from airflow.sdk import ObjectStoragePath  # heavy import: only for remote stores

    path = ObjectStoragePath(item.uri)
    size = item.size if item.size is not None else path.stat().st_size
    span = _byte_range(request.headers.get("range"), size)
    start, end = span or (0, size - 1)
    length = end - start + 1 if size else 0
    headers = {
        "Content-Length": str(length),
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{item.filename}"',
    }
    if span:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"

    def chunks() -> Iterator[bytes]:
        if head or not length:
            return
        with path.open("rb") as src:
            src.seek(start)
            left = length
            while left > 0:
                piece = src.read(min(CHUNK, left))
                if not piece:
                    break
                left -= len(piece)
                yield piece

    return StreamingResponse(chunks(), status_code=206 if span else 200, media_type=item.media_type, headers=headers)


def serve(request: Request, item: Download) -> Response:
    """Send the artefact: a local file with Starlette's FileResponse (Range and Content-Length
    built in), anything else streamed from the store."""
    local = _local_path(item.uri)
    if local is not None:
        if not local.is_file():
            raise not_found("the file behind this link is gone from the artifact store")
        return _File(local, media_type=item.media_type, filename=item.filename)
    return _remote(request, item, head=request.method == "HEAD")


@router.api_route("/downloads/{token}", methods=["GET", "HEAD"], tags=["Downloads"], summary="Download by link")
def download(token: str, request: Request, conn: Conn) -> Response:
    """The artefact a signed link names, without a login. 403: not a link of ours; 410: expired;
    404: deleted (a deleted report request, a removed file)."""
    link = verify(token)
    if _expired(link.expires_at):
        raise ApiError(410, "this download link has expired", code="expired")
    resolver = _RESOLVERS.get(link.kind)
    item = resolver(conn, link.ident) if resolver else None
    if item is None:
        raise not_found("nothing is behind this link any more (deleted)")
    if _expired(item.expires_at):
        raise ApiError(410, "this download has expired", code="expired")
    return serve(request, item)
