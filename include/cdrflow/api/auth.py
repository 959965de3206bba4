"""Who is calling: each seed's own way of presenting a credential (``api-contract.md`` §0.2).

A token (``cdrflow accounts token ACCOUNT``) is accepted in any of the places the seeds' clients
put it: ``X-Auth-Token`` (Kazoo, the project's standard), ``Authorization: Bearer`` (the Telnyx
SDK), ``x-api-token`` (Telnyx v1 clients; ``x-api-user`` is ignored), or the query parameter
``auth_token`` (seed 002's curl example). Kazoo session tokens from ``PUT /v{1,2}/api_auth``
are accepted the same way. The billing feed's ``login``/``password`` are checked by its route.

A request without a valid credential answers 401 in its API's envelope. An account sees only
its own records: :func:`require_account` answers 401 for a foreign account in a path (as Kazoo
does); routes answer 404 for a foreign record's id, as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cdrflow.api.deps import Conn
from cdrflow.api.errors import unauthorized
from cdrflow.warehouse.credentials import Principal, principal_for_token

__all__ = ["Caller", "Principal", "current_principal", "presented_token", "require_account"]


def presented_token(request: Request) -> str | None:
    """The token the request carries, wherever its client put it."""
    headers = request.headers
    if token := headers.get("x-auth-token"):
        return token.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if token := headers.get("x-api-token"):
        return token.strip()
    if token := request.query_params.get("auth_token"):
        return token.strip()
    return None


def current_principal(request: Request, conn: Conn) -> Principal:
    token = presented_token(request)
    if not token:
        raise unauthorized("no credential: send X-Auth-Token, Authorization: Bearer, x-api-token or ?auth_token=")
    principal = principal_for_token(conn, token)
    if principal is None:
        raise unauthorized("invalid credentials")
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(current_principal)]


def require_account(principal: Principal, account_id: str) -> None:
    """A path naming an account (Kazoo's ``/accounts/{account_id}``) must be the caller's own."""
    if not principal.may_see(account_id):
        raise unauthorized("the credential does not belong to this account")
