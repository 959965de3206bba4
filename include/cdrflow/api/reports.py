"""Seed 001, report requests (Telnyx v1): create, list, get, delete."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
