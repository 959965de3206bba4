"""Seed 000, the CDR Files registry: list, one file, upload."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
