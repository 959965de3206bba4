"""Signed, expiring download links (report artefacts, invoice files)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
