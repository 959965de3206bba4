"""Kazoo's ``PUT /v{1,2}/api_auth`` (an api key for a session token, as kazoo-sdk and PyKazoo do
before every other call) and ``GET /whoami`` (cdrflow's own: which account a credential is)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from cdrflow.api.auth import Caller
from cdrflow.api.deps import Conn, commit_now
from cdrflow.api.errors import ApiError, request_id, unauthorized
from cdrflow.warehouse.credentials import session_for_api_key

router = APIRouter()


class ApiKey(BaseModel):
    api_key: str


class ApiAuthBody(BaseModel):
    data: ApiKey


@router.put("/v1/api_auth", tags=["CDRs"], status_code=201, summary="Kazoo: exchange an api key for a token")
@router.put("/v2/api_auth", tags=["CDRs"], status_code=201, summary="Kazoo: exchange an api key for a token")
def api_auth(request: Request, conn: Conn, body: ApiAuthBody = Body(...)) -> JSONResponse:
    """``{"data": {"api_key": "..."}}`` gives ``auth_token``, valid for an hour (Kazoo's default)."""
    if not body.data.api_key:
        raise ApiError(400, "api_key is required", code="invalid_request")
    issued = session_for_api_key(conn, body.data.api_key)
    if issued is None:
        raise unauthorized("invalid api key")
    principal, token, expires = issued
    commit_now(conn)  # the client uses the token at once: it must be visible when the answer arrives
    data: dict[str, Any] = {
        "account_id": principal.account_id,
        "expires": expires.isoformat(),
        "is_reseller": principal.is_operator,
        "apps": [],
    }
    envelope = {
        "auth_token": token,
        "data": data,
        "request_id": request_id(request),
        "revision": "undefined",
        "status": "success",
    }
    return JSONResponse(envelope, status_code=201)


class WhoAmI(BaseModel):
    role: str
    account_id: str | None
    credential_id: int


@router.get("/whoami", tags=["Billing"], summary="cdrflow: which account the credential belongs to")
def whoami(caller: Caller) -> WhoAmI:
    return WhoAmI(role=caller.role, account_id=caller.account_id, credential_id=caller.credential_id)
