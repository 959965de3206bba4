"""Seeds 002 and 003, the CDRs API (Kazoo): v1 and v2 lists, one CDR, per user, CSV; PUT api_auth."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
