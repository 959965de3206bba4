"""Seed 004, the billing feed: login/password, fromid inclusive, CSV."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
