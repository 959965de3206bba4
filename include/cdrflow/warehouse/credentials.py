"""API credentials (``api_credentials``, ``sql/017``): create, check and revoke them.

Secrets are shown once, when created, and only their hashes are stored. Tokens, Kazoo api keys
and sessions are 256-bit random values, so their sha256 digest is stored and looked up by index
(a slow password hash would add nothing against guessing and cost every request). A billing-feed
password is chosen by a person, so it is stored with scrypt (``hashlib.scrypt``, salted; the
standard library's memory-hard KDF, no new dependency) and checked only against its account's rows.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from cdrflow.config.errors import CdrflowError

KINDS = ("token", "api_key", "session", "feed_password")
SESSION_LIFETIME = timedelta(hours=1)  # Kazoo's auth tokens last an hour by default
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class UnknownCredential(CdrflowError):
    """No credential with that id."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account (sees its own records) or an operator (sees all)."""

    role: str  # account | operator
    account_id: str | None
    credential_id: int

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def may_see(self, account_id: str | None) -> bool:
        """Whether records of ``account_id`` are this principal's to see."""
        return self.is_operator or (account_id is not None and account_id == self.account_id)


@dataclass(frozen=True)
class Credential:
    id: int
    account_id: str | None
    role: str
    kind: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _password_hash(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${key.hex()}"


def _password_matches(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, key = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), key)


_INSERT = text("""
INSERT INTO api_credentials (account_id, role, kind, label, secret_hash, expires_at)
VALUES (:account_id, :role, :kind, :label, :secret_hash, :expires_at)
RETURNING id
""")


def create(
    conn: Connection,
    kind: str,
    account_id: str | None,
    *,
    label: str | None = None,
    secret: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[int, str]:
    """A new credential; returns its id and the secret (shown once, never stored).

    ``account_id`` None makes an operator credential. ``secret`` is generated unless given (a feed
    password is chosen by the account's owner)."""
    if kind not in KINDS:
        raise ValueError(f"unknown credential kind {kind!r}")
    if kind == "feed_password" and (account_id is None or not secret):
        raise CdrflowError("a billing-feed password belongs to an account and cannot be empty")
    secret = secret or secrets.token_urlsafe(32)
    stored = _password_hash(secret) if kind == "feed_password" else digest(secret)
    row_id = conn.execute(
        _INSERT,
        {
            "account_id": account_id,
            "role": "account" if account_id is not None else "operator",
            "kind": kind,
            "label": label,
            "secret_hash": stored,
            "expires_at": expires_at,
        },
    ).scalar_one()
    return int(row_id), secret


_BY_DIGEST = text("""
SELECT id, role, account_id FROM api_credentials
WHERE secret_hash = :digest AND kind = ANY(:kinds) AND revoked_at IS NULL
  AND (expires_at IS NULL OR expires_at > now())
""")


def principal_for_token(
    conn: Connection, secret: str, kinds: tuple[str, ...] = ("token", "session")
) -> Principal | None:
    """The principal of a token (or session), or None when it is unknown, revoked or expired."""
    if not secret:
        return None
    row = conn.execute(_BY_DIGEST, {"digest": digest(secret), "kinds": list(kinds)}).first()
    return Principal(role=row.role, account_id=row.account_id, credential_id=row.id) if row else None


def session_for_api_key(conn: Connection, api_key: str) -> tuple[Principal, str, datetime] | None:
    """Kazoo's ``PUT /api_auth``: a valid api key gives a new session token (it expires)."""
    owner = principal_for_token(conn, api_key, kinds=("api_key",))
    if owner is None:
        return None
    expires = conn.execute(text("SELECT now() + :life"), {"life": SESSION_LIFETIME}).scalar_one()
    row_id, token = create(
        conn, "session", owner.account_id, label=f"api_auth of key {owner.credential_id}", expires_at=expires
    )
    return Principal(role=owner.role, account_id=owner.account_id, credential_id=row_id), token, expires


_FEED_ROWS = text("""
SELECT id, secret_hash FROM api_credentials
WHERE account_id = :login AND kind = 'feed_password' AND revoked_at IS NULL
  AND (expires_at IS NULL OR expires_at > now())
""")


def principal_for_feed_login(conn: Connection, login: str, password: str) -> Principal | None:
    """Seed 004's ``login`` (an account number) and ``password``, or None when they do not match."""
    if not login or not password:
        return None
    rows = conn.execute(_FEED_ROWS, {"login": login}).all()
    for row in rows:
        if _password_matches(password, row.secret_hash):
            return Principal(role="account", account_id=login, credential_id=row.id)
    if not rows:  # as slow as a wrong password: the time taken must not tell which logins exist
        _password_matches(password, _unknown_login_hash())
    return None


@functools.cache
def _unknown_login_hash() -> str:
    return _password_hash(secrets.token_urlsafe(16))


def revoke(conn: Connection, credential_id: int) -> Credential:
    """Revoke a credential (at once: the next request with it is refused)."""
    row = conn.execute(
        text("UPDATE api_credentials SET revoked_at = coalesce(revoked_at, now()) WHERE id = :id RETURNING id"),
        {"id": credential_id},
    ).first()
    if row is None:
        raise UnknownCredential(f"no API credential has id {credential_id}")
    return listing(conn, credential_id=credential_id)[0]


def listing(conn: Connection, account_id: str | None = None, credential_id: int | None = None) -> list[Credential]:
    """Credentials (never their secrets), newest first; sessions past their expiry are left out."""
    rows = conn.execute(
        text("""
        SELECT id, account_id, role, kind, label, created_at, expires_at, revoked_at
        FROM api_credentials
        WHERE (CAST(:account AS text) IS NULL OR account_id = :account)
          AND (CAST(:id AS bigint) IS NULL OR id = :id)
          AND NOT (kind = 'session' AND expires_at <= now())
        ORDER BY id DESC
        """),
        {"account": account_id, "id": credential_id},
    )
    return [Credential(**row._mapping) for row in rows]
