"""Billing outputs: billruns and their invoice files, for the operator and each account."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
